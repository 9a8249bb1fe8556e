"""The training loop: one run folder per run, checkpoints, CSV/TensorBoard logs, resume, early stop.

Run folder contents: ``config.yaml`` (as run), ``log.csv`` (one row per epoch), ``tb/``
(TensorBoard, when installed), ``last.pt`` (resume from here), ``best.pt`` (best validation
score), ``summary.json`` (best epoch and its held-out scores per source).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import random
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import ddp
from .config import build_sources, load_config
from .data.augment import Augment
from .data.dataset import SegmentationDataset, band_statistics
from .evaluate import score_pairs
from .losses import build_loss
from .metrics import SegmentationScores
from .models import build_model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_model(cfg: Mapping[str, Any], in_channels: int) -> torch.nn.Module:
    m = dict(cfg["model"])
    extra = {k: v for k, v in m.items() if k not in ("architecture", "encoder", "decoder_channels")}
    return build_model(
        m["architecture"],
        m["encoder"],
        in_channels,
        decoder_channels=m.get("decoder_channels"),
        **extra,
    )


def model_from_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    model = make_model(ckpt["config"], len(ckpt["mean"]))
    model.load_state_dict(ckpt["model"])
    return model, ckpt


def _device(cfg: Mapping[str, Any]) -> torch.device:
    want = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(want)


def _normalisation(cfg: Mapping[str, Any], train_pairs: list) -> tuple[list[float], list[float]]:
    norm = cfg["data"].get("normalization", "auto")
    if isinstance(norm, Mapping):
        return [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    return band_statistics(train_pairs, seed=int(cfg["seed"]))


def transfer_weights(
    model: torch.nn.Module, path: str | Path, channels: list[tuple[int, int]] | None = None
) -> list[str]:
    """Load matching weights from another checkpoint (e.g. an RGB model into a 14-band one).

    Tensors of equal shape are copied. A 4-D tensor whose input channels differ (the first
    convolution) gets, for each ``(own_channel, source_channel)`` in ``channels`` (default: the
    first channels in order), the source weights; its other channels start at zero.
    """
    src = torch.load(str(path), map_location="cpu", weights_only=False)["model"]
    own = model.state_dict()
    loaded = []
    for key, val in src.items():
        if key not in own:
            continue
        if own[key].shape == val.shape:
            own[key] = val
            loaded.append(key)
        elif (
            val.dim() == 4
            and own[key].dim() == 4
            and own[key].shape[0] == val.shape[0]
            and own[key].shape[2:] == val.shape[2:]
        ):
            w = torch.zeros_like(own[key])
            pairs = channels or [(c, c) for c in range(min(w.shape[1], val.shape[1]))]
            for dst_c, src_c in pairs:
                w[:, int(dst_c)] = val[:, int(src_c)]
            own[key] = w
            loaded.append(key)
    model.load_state_dict(own)
    return loaded


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
    device = _device(cfg)
    ctx = ddp.setup(device.type)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    seed_everything(int(cfg["seed"]))
    sources = build_sources(cfg)
    mean, std = _normalisation(cfg, sources.train)
    tile = int(cfg["data"]["tile_size"])
    train_ds = SegmentationDataset(
        sources.train,
        mean,
        std,
        tile_size=tile,
        train=True,
        augment=Augment.parse(cfg.get("augment")),
        repeats=sources.repeats,
        seed=int(cfg["seed"]),
    )
    sampler = None
    if ctx.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(
            train_ds, ctx.world_size, ctx.rank, shuffle=True, seed=int(cfg["seed"])
        )
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    loader = DataLoader(
        train_ds,
        batch_size=int(cfg["batch_size"]),
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=int(cfg.get("workers") or 0),
        drop_last=len(train_ds) > int(cfg["batch_size"]),
        generator=gen,
        pin_memory=device.type == "cuda",
        persistent_workers=bool(cfg.get("workers")),
    )

    model = make_model(cfg, len(mean)).to(device)
    init = cfg.get("init_from")
    if init and not resume:
        init = {"checkpoint": init} if isinstance(init, (str, os.PathLike)) else dict(init)
        if Path(init["checkpoint"]).is_file():
            n = len(transfer_weights(model, init["checkpoint"], init.get("channels")))
            if ctx.is_main:
                tqdm.write(f"init_from: {n} tensors from {init['checkpoint']}")
        elif init.get("required", True):
            raise FileNotFoundError(
                f"init_from: checkpoint {init['checkpoint']} not found (expected a run's best.pt; "
                "paths are relative to the working folder). Train that run first, or remove "
                "init_from to start from random weights."
            )
        elif ctx.is_main:
            tqdm.write(f"init_from: {init['checkpoint']} not found; starting from random weights")
    net: torch.nn.Module = model
    if ctx.enabled:
        # find_unused_parameters: some encoders keep layers a shallow encoder_depth never uses;
        # without it DDP silently skips averaging the gradient buckets holding them
        net = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[ctx.local_rank] if device.type == "cuda" else None,
            find_unused_parameters=bool((cfg.get("ddp") or {}).get("find_unused_parameters", True)),
        )
    if cfg.get("compile") and device.type == "cuda":
        net = torch.compile(net)
    opt_cfg = dict(cfg["optimizer"])
    opt_name = opt_cfg.pop("name", "adam").lower()
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(opt_name)
    if opt_cls is None:
        raise ValueError(f"optimizer {opt_name!r}: expected adam or adamw")
    optimizer = opt_cls(
        model.parameters(),
        lr=float(opt_cfg.pop("lr", 1e-3)),
        weight_decay=float(opt_cfg.pop("weight_decay", 0.0)),
    )
    epochs = int(cfg["epochs"])
    sch_cfg = dict(cfg.get("scheduler") or {})
    scheduler = None
    if sch_cfg.get("name", "cosine") == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, epochs), eta_min=float(sch_cfg.get("min_lr", 1e-6))
        )
    loss_cfg = dict(cfg["loss"])
    loss_fn = build_loss(loss_cfg.pop("name", "bce_dice"), **loss_cfg)
    use_amp = bool(cfg.get("amp")) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    stop_cfg = dict(cfg.get("early_stopping") or {})
    metric_name, patience = stop_cfg.get("metric", "f1"), int(stop_cfg.get("patience", 10))
    start_epoch, best, best_epoch, history = 0, -math.inf, -1, []
    if resume:
        ckpt = torch.load(str(resume), map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, best, best_epoch = ckpt["epoch"] + 1, ckpt["best"], ckpt["best_epoch"]
        history = ckpt.get("history", [])
        mean, std = ckpt["mean"], ckpt["std"]
        run_dir = run_dir or Path(resume).parent

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

    threshold = float(cfg.get("threshold", 0.5))
    hardware = describe_hardware(device, ctx.world_size)
    train_seconds = float(history[-1].get("train_seconds", 0.0)) if history else 0.0
    max_steps = cfg.get("max_steps_per_epoch")
    stop = False
    for epoch in range(start_epoch, epochs):
        train_ds.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        t0, seen, total_loss, steps = time.time(), 0, 0.0, 0
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not (progress and ctx.is_main),
            leave=False,
        )
        for images, masks in bar:
            images, masks = (
                images.to(device, non_blocking=True),
                masks.to(device, non_blocking=True),
            )
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                loss = loss_fn(net(images), masks)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += float(loss.detach())
            seen += images.shape[0]
            steps += 1
            bar.set_postfix(loss=f"{total_loss / steps:.4f}")
            if max_steps and steps >= int(max_steps):
                break
        if scheduler is not None:
            scheduler.step()
        train_time = time.time() - t0
        train_seconds += train_time
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": total_loss / max(1, steps),
            "train_images_per_s": seen * ctx.world_size / max(train_time, 1e-9),
            "train_seconds": train_seconds,
        }
        scores: dict[str, dict[str, Any]] = {}
        improved = False
        if ctx.is_main:
            scores = validate(
                model,
                sources.val,
                mean,
                std,
                device,
                threshold,
                int(cfg["eval_batch_size"]),
                loss_fn,
            )
            pooled = scores.get("all", {})
            for name, s in scores.items():
                for key in ("f1", "precision", "recall", "iou_dataset", "iou_per_image"):
                    row[f"{name}/{key}"] = s[key]
            row["val_loss"] = pooled.get("loss", float("nan"))
            value = pooled.get(metric_name, -math.inf) if scores else -row["train_loss"]
            improved = value > best
            if improved:
                best, best_epoch = value, epoch + 1
            history.append(row)
            _append_csv(run / "log.csv", row)
            if writer is not None:
                for key, val in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, val, epoch + 1)
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler else None,
                "epoch": epoch,
                "best": best,
                "best_epoch": best_epoch,
                "history": history,
                "config": _plain(cfg),
                "mean": list(mean),
                "std": list(std),
                "scores": scores,
                "split_rules": sources.rules,
                "world_size": ctx.world_size,
                "hardware": hardware,
                "train_seconds": train_seconds,
            }
            _save(state, run / "last.pt")
            if improved:
                _save(state, run / "best.pt")
            tqdm.write(_epoch_line(row, scores, metric_name))
            stop = epoch + 1 - best_epoch >= patience
        if ctx.enabled:
            flag = ddp.all_reduce_sum(torch.tensor([1.0 if stop else 0.0]), ctx)
            stop = bool(flag.item() > 0)
        if stop:
            break
    if ctx.is_main:
        best_state = torch.load(str(run / "best.pt"), map_location="cpu", weights_only=False)
        summary = {
            "name": cfg["name"],
            "best_epoch": best_epoch,
            "best_" + metric_name: best,
            "epochs_run": len(history),
            "scores": best_state["scores"],
            "split_rules": sources.rules,
            "world_size": ctx.world_size,
            "device": str(device),
            "hardware": hardware,
            "train_seconds": train_seconds,
            "parameter_checksum": parameter_checksum(model),
        }
        (run / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        if writer is not None:
            writer.close()
    if ctx.enabled:
        # every process records its parameters: DDP must have kept them identical
        ddp.barrier(ctx)
        (run / f"checksum_rank{ctx.rank}.txt").write_text(f"{parameter_checksum(model):.12e}\n")
        ddp.barrier(ctx)
        ddp.teardown(ctx)
    return run


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


def _save(state: Mapping[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(dict(state), str(tmp))
    tmp.replace(path)


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(cfg, default=str))


def _write_config(cfg: Mapping[str, Any], path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(_plain(cfg), sort_keys=False), encoding="utf-8")
