"""The training loop: one run folder per run, checkpoints, CSV/TensorBoard logs, resume, early stop.

Run folder contents: ``config.yaml`` (as run), ``log.csv`` (one row per epoch), ``tb/``
(TensorBoard, when installed), ``last.pt`` (resume from here), ``best.pt`` (best validation
score), ``summary.json`` (best epoch and its held-out scores per source).

:func:`fit` runs these steps in order: :func:`training.trainer.build_trainer` (process group,
data, network, optimiser, loss), :func:`_restore` (when resuming), :func:`_open_run_folder`;
then per epoch :func:`_train_epoch`, :func:`_validate_epoch` (:func:`validate`),
:func:`_log_epoch`, :func:`_checkpoint` and the early-stopping check; finally
:func:`_write_summary` and :func:`_finish_processes`.

Imports: :mod:`training.trainer` (the set-up), :mod:`training.evaluate` (the held-out scoring
that :func:`validate` runs), :mod:`training.models`, :mod:`training.checkpoints` (plain-value
checkpoints, read without running code), :mod:`training.config`,
:mod:`training.metrics` and :mod:`training.ddp`. ``seed_everything`` (from
:mod:`training.trainer`) and ``make_model``, ``model_from_checkpoint`` and ``transfer_weights``
(from :mod:`training.models`) stay importable from here. Within :mod:`training` only
:mod:`training.cli` imports this module.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from . import ddp
from .checkpoints import load_checkpoint, save_checkpoint
from .config import load_config
from .evaluate import score_pairs
from .metrics import SegmentationScores
from .models import make_model, mismatch, model_from_checkpoint, transfer_weights
from .trainer import Trainer, build_trainer, seed_everything

__all__ = [  # make_model, model_from_checkpoint, seed_everything, transfer_weights: re-exported
    "describe_hardware",
    "fit",
    "make_model",
    "model_from_checkpoint",
    "parameter_checksum",
    "seed_everything",
    "transfer_weights",
    "validate",
]


@dataclass
class _Progress:
    """What a checkpoint carries from epoch to epoch and across a resume."""

    mean: Any
    std: Any
    start_epoch: int = 0
    best: float = -math.inf
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def fit(
    config: str | os.PathLike[str] | Mapping[str, Any],
    run_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """Train as ``config`` says; returns the run folder."""
    cfg = (
        load_config(config, **overrides)
        if not (isinstance(config, Mapping) and "_base" in config)
        else dict(config)
    )
    t, mean, std = build_trainer(cfg, init_weights=not resume)
    stop_cfg = dict(cfg.get("early_stopping") or {})
    metric_name, patience = stop_cfg.get("metric", "f1"), int(stop_cfg.get("patience", 10))
    prog = _Progress(mean, std)
    if resume:
        _restore(t, prog, resume)
        run_dir = run_dir or Path(resume).parent
    run, writer = _open_run_folder(cfg, run_dir, t.ctx)

    threshold = float(cfg.get("threshold", 0.5))
    hardware = describe_hardware(t.device, t.ctx.world_size)
    stop = False
    for epoch in range(prog.start_epoch, int(cfg["epochs"])):
        row = _train_epoch(t, prog, epoch, progress)
        if t.ctx.is_main:
            scores = _validate_epoch(t, prog, row, threshold)
            pooled = scores.get("all", {})
            value = pooled.get(metric_name, -math.inf) if scores else -row["train_loss"]
            improved = value > prog.best
            if improved:
                prog.best, prog.best_epoch = value, epoch + 1
            prog.history.append(row)
            _log_epoch(run, writer, row)
            _checkpoint(t, prog, epoch, scores, hardware, run, improved)
            tqdm.write(_epoch_line(row, scores, metric_name))
            stop = epoch + 1 - prog.best_epoch >= patience
        if t.ctx.enabled:
            flag = ddp.all_reduce_sum(torch.tensor([1.0 if stop else 0.0]), t.ctx)
            stop = bool(flag.item() > 0)
        if stop:
            break
    if t.ctx.is_main:
        _write_summary(t, prog, run, metric_name, hardware)
        if writer is not None:
            writer.close()
    _finish_processes(t, run)
    return run


def _restore(t: Trainer, prog: _Progress, resume: str | os.PathLike[str]) -> None:
    """Continue from a checkpoint: weights, optimiser, schedule, progress and normalisation."""
    ckpt = load_checkpoint(resume, "resume")
    problem = mismatch(t.model.state_dict(), ckpt["model"])
    if problem:
        raise ValueError(
            f"checkpoint {resume}: expected the weights of the network this config describes, "
            f"found {problem}"
        )
    t.model.load_state_dict(ckpt["model"])
    t.optimizer.load_state_dict(ckpt["optimizer"])
    if t.scheduler is not None and ckpt.get("scheduler"):
        t.scheduler.load_state_dict(ckpt["scheduler"])
    prog.start_epoch = ckpt["epoch"] + 1
    prog.best, prog.best_epoch = ckpt["best"], ckpt["best_epoch"]
    prog.history = ckpt.get("history", [])
    prog.mean, prog.std = ckpt["mean"], ckpt["std"]
    t.encoder_weights = ckpt.get("encoder_weights")
    last = prog.history[-1] if prog.history else {}
    prog.train_seconds = float(last.get("train_seconds", 0.0))


def _open_run_folder(
    cfg: Mapping[str, Any], run_dir: str | os.PathLike[str] | None, ctx: ddp.Distributed
) -> tuple[Path, Any]:
    """The run folder (rank 0's name on every process) and a TensorBoard writer (or None).

    Rank 0 creates the folder and writes ``config.yaml`` into it.
    """
    run = Path(run_dir) if run_dir else Path("runs") / cfg["name"] / time.strftime("%Y%m%d-%H%M%S")
    run = Path(ddp.broadcast_object(str(run), ctx))
    writer = None
    if ctx.is_main:
        run.mkdir(parents=True, exist_ok=True)
        _write_config(cfg, run / "config.yaml")
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run / "tb"))
        except Exception:  # tensorboard is optional
            writer = None
    return run, writer


def _train_epoch(t: Trainer, prog: _Progress, epoch: int, progress: bool) -> dict[str, Any]:
    """One pass over the training loader (then one scheduler step); the epoch's log row so far.

    Adds the epoch's time to ``prog.train_seconds``.
    """
    epochs, max_steps = int(t.cfg["epochs"]), t.cfg.get("max_steps_per_epoch")
    t.train_ds.set_epoch(epoch)
    if t.sampler is not None:
        t.sampler.set_epoch(epoch)
    t.net.train()
    t0, seen, total_loss, steps = time.time(), 0, 0.0, 0
    bar = tqdm(
        t.loader,
        desc=f"epoch {epoch + 1}/{epochs}",
        disable=not (progress and t.ctx.is_main),
        leave=False,
    )
    for images, masks in bar:
        images, masks = (
            images.to(t.device, non_blocking=True),
            masks.to(t.device, non_blocking=True),
        )
        t.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(t.device.type, enabled=t.use_amp):
            loss = t.loss_fn(t.net(images), masks)
        t.scaler.scale(loss).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
        total_loss += float(loss.detach())
        seen += images.shape[0]
        steps += 1
        bar.set_postfix(loss=f"{total_loss / steps:.4f}")
        if max_steps and steps >= int(max_steps):
            break
    if t.scheduler is not None:
        t.scheduler.step()
    train_time = time.time() - t0
    prog.train_seconds += train_time
    return {
        "epoch": epoch + 1,
        "lr": t.optimizer.param_groups[0]["lr"],
        "train_loss": total_loss / max(1, steps),
        "train_images_per_s": seen * t.ctx.world_size / max(train_time, 1e-9),
        "train_seconds": prog.train_seconds,
    }


def _validate_epoch(
    t: Trainer, prog: _Progress, row: dict[str, Any], threshold: float
) -> dict[str, dict[str, Any]]:
    """Held-out scores (rank 0); their headline numbers and ``val_loss`` are added to ``row``."""
    scores = validate(
        t.model,
        t.sources.val,
        prog.mean,
        prog.std,
        t.device,
        threshold,
        int(t.cfg["eval_batch_size"]),
        t.loss_fn,
    )
    for name, s in scores.items():
        for key in ("f1", "precision", "recall", "iou_dataset", "iou_per_image"):
            row[f"{name}/{key}"] = s[key]
    row["val_loss"] = scores.get("all", {}).get("loss", float("nan"))
    return scores


def _log_epoch(run: Path, writer: Any, row: Mapping[str, Any]) -> None:
    """One row in ``log.csv`` and, with TensorBoard, one point per value."""
    _append_csv(run / "log.csv", row)
    if writer is not None:
        for key, val in row.items():
            if key != "epoch":
                writer.add_scalar(key, val, row["epoch"])  # epoch + 1


def _checkpoint(
    t: Trainer,
    prog: _Progress,
    epoch: int,
    scores: Mapping[str, Any],
    hardware: str,
    run: Path,
    improved: bool,
) -> None:
    """``last.pt`` every epoch; ``best.pt`` too when the epoch improved the validation score."""
    state = {
        "model": t.model.state_dict(),
        "optimizer": t.optimizer.state_dict(),
        "scheduler": t.scheduler.state_dict() if t.scheduler else None,
        "epoch": epoch,
        "best": prog.best,
        "best_epoch": prog.best_epoch,
        "history": prog.history,
        "config": _plain(t.cfg),
        "mean": list(prog.mean),
        "std": list(prog.std),
        "scores": scores,
        "split_rules": t.sources.rules,
        "world_size": t.ctx.world_size,
        "hardware": hardware,
        "train_seconds": prog.train_seconds,
    }
    if t.encoder_weights:
        state["encoder_weights"] = t.encoder_weights
    save_checkpoint(state, run / "last.pt")
    if improved:
        save_checkpoint(state, run / "best.pt")


def _write_summary(t: Trainer, prog: _Progress, run: Path, metric_name: str, hardware: str) -> None:
    """``summary.json``: the best epoch, its held-out scores and where the run trained."""
    best_state = load_checkpoint(run / "best.pt", "model")
    summary = {
        "name": t.cfg["name"],
        "best_epoch": prog.best_epoch,
        "best_" + metric_name: prog.best,
        "epochs_run": len(prog.history),
        "scores": best_state["scores"],
        "split_rules": t.sources.rules,
        "world_size": t.ctx.world_size,
        "device": str(t.device),
        "hardware": hardware,
        "train_seconds": prog.train_seconds,
        "parameter_checksum": parameter_checksum(t.model),
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


def _finish_processes(t: Trainer, run: Path) -> None:
    """Under DDP: each process's parameter checksum in the run folder, then leave the group."""
    if not t.ctx.enabled:
        return
    # every process records its parameters: DDP must have kept them identical
    ddp.barrier(t.ctx)
    (run / f"checksum_rank{t.ctx.rank}.txt").write_text(f"{parameter_checksum(t.model):.12e}\n")
    ddp.barrier(t.ctx)
    ddp.teardown(t.ctx)


def describe_hardware(device: torch.device, world_size: int = 1) -> str:
    """Where training ran, for the contract (e.g. 'CPU: AMD EPYC, 1 torch thread')."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{world_size} x GPU {name}" if world_size > 1 else f"GPU {name}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    per = f"{threads} torch thread{'s' if threads > 1 else ''}"
    if world_size > 1:
        return f"{world_size} CPU processes ({model}, {per} each)"
    return f"CPU: {model}, {per}"


def parameter_checksum(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.double().abs().sum() for p in model.parameters()))


def validate(
    model: torch.nn.Module,
    val: Mapping[str, list],
    mean,
    std,
    device: torch.device,
    threshold: float,
    batch_size: int,
    loss_fn=None,
) -> dict[str, dict[str, Any]]:
    """Held-out scores per source and pooled (``all``), with the mean loss."""
    model.eval()
    results: dict[str, dict[str, Any]] = {}
    total = SegmentationScores()
    losses: list[float] = []

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(model(torch.from_numpy(x).to(device))[:, 0]).float().cpu().numpy()

    def on_batch(images: np.ndarray, masks: np.ndarray, prob: np.ndarray) -> None:
        if loss_fn is not None:
            logits = torch.logit(torch.from_numpy(prob).clamp(1e-6, 1 - 1e-6))[:, None]
            losses.append(float(loss_fn(logits, torch.from_numpy(masks))))

    for name, pairs in val.items():
        acc = score_pairs(
            predict, pairs, mean, std, threshold=threshold, batch_size=batch_size, on_batch=on_batch
        )
        results[name] = acc.summary()
        total.merge(acc)
    if results:
        results["all"] = total.summary()
        results["all"]["loss"] = float(np.mean(losses)) if losses else float("nan")
    model.train()
    return results


def _epoch_line(row: Mapping[str, Any], scores: Mapping[str, Any], metric: str) -> str:
    parts = [
        f"epoch {row['epoch']}",
        f"loss {row['train_loss']:.4f}",
        f"{row['train_images_per_s']:.1f} img/s",
    ]
    for name, s in scores.items():
        parts.append(f"{name}: F1 {s['f1']:.3f} IoU {s['iou_dataset']:.3f}")
    return " | ".join(parts)


def _append_csv(path: Path, row: Mapping[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(cfg, default=str))


def _write_config(cfg: Mapping[str, Any], path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(_plain(cfg), sort_keys=False), encoding="utf-8")
