"""Setting up a training run: seeds, the training data loader, the network and its optimiser.

What lives here: :func:`build_trainer` turns a loaded config into a :class:`Trainer` (device,
DDP context, data sources, augmented training dataset and loader, network with ``init_from``
or pretrained encoder weights and its DDP/``torch.compile`` wrapper, optimiser, LR schedule,
loss, AMP scaler) plus the run's per-band normalisation. The epochs themselves run in
:mod:`training.loop`.

Normalisation (``data.normalization``): ``auto`` is ``imagenet`` when ``model.encoder_weights``
is set, else ``statistics`` (the training images' per-band mean/std); ``imagenet`` gives the
red/green/blue bands ImageNet's statistics (see :mod:`training.pretrained`) and the others
their own; ``{mean, std}`` is taken as given.

Imports: :mod:`training.config`, :mod:`training.data`, :mod:`training.ddp`,
:mod:`training.losses`, :mod:`training.models` and :mod:`training.pretrained`; never
:mod:`training.loop` or :mod:`training.evaluate`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import ddp, pretrained
from .config import Sources, build_sources
from .data.augment import Augment
from .data.dataset import SegmentationDataset, band_statistics
from .losses import build_loss
from .models import make_model, transfer_weights


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(cfg: Mapping[str, Any]) -> torch.device:
    want = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(want)


def _normalisation(cfg: Mapping[str, Any], train_pairs: list) -> tuple[list[float], list[float]]:
    norm = cfg["data"].get("normalization", "auto")
    if isinstance(norm, Mapping):
        return [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    if norm == "auto":
        norm = "imagenet" if pretrained.weights_setting(cfg) else "statistics"
    if norm not in ("statistics", "imagenet"):
        raise ValueError(
            f"data.normalization {norm!r}: expected auto, statistics, imagenet or {{mean, std}}"
        )
    bands = (cfg.get("contract") or {}).get("bands") or []
    if norm == "imagenet" and bands and len(pretrained.rgb_bands(cfg, len(bands))) == len(bands):
        return pretrained.imagenet_normalisation(cfg, None, len(bands))  # no statistics needed
    stats = band_statistics(train_pairs, seed=int(cfg["seed"]))
    if norm == "imagenet":
        return pretrained.imagenet_normalisation(cfg, stats, len(stats[0]))
    return stats


@dataclass
class Trainer:
    """What :func:`build_trainer` builds once per run and every epoch uses."""

    cfg: Mapping[str, Any]
    ctx: ddp.Distributed
    device: torch.device
    sources: Sources
    train_ds: SegmentationDataset
    sampler: Any  # DistributedSampler under DDP, else None
    loader: DataLoader
    model: torch.nn.Module  # the bare network: state dicts, validation, checksum
    net: torch.nn.Module  # what a training step calls: the model, DDP- or compile-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: Any  # an LR scheduler or None
    loss_fn: Callable[..., torch.Tensor]
    scaler: torch.amp.GradScaler
    use_amp: bool
    encoder_weights: str | None = None  # what the encoder started from (for the contract)


def build_trainer(cfg: Mapping[str, Any], init_weights: bool) -> tuple[Trainer, Any, Any]:
    """Process group, seeds, data, network, optimiser and loss; also the run's (mean, std).

    ``init_weights``: apply the config's ``init_from`` (not when resuming).
    """
    device = _device(cfg)
    ctx = ddp.setup(device.type)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    seed_everything(int(cfg["seed"]))
    sources = build_sources(cfg)
    mean, std = _normalisation(cfg, sources.train)
    train_ds, sampler, loader = _train_loader(cfg, sources, mean, std, ctx, device)
    model = make_model(cfg, len(mean))
    encoder_weights = None
    if init_weights and not _init_from(model, cfg, ctx):
        encoder_weights = pretrained.load_encoder_weights(model, cfg, len(mean))
        if encoder_weights and ctx.is_main:
            tqdm.write(f"encoder weights: {encoder_weights}")
    if (cfg.get("model") or {}).get("freeze_encoder"):
        pretrained.freeze_encoder(model)
    model = model.to(device)
    net = _wrap_network(model, cfg, ctx, device)
    optimizer, scheduler = _optimiser(cfg, model)
    loss_cfg = dict(cfg["loss"])
    loss_fn = build_loss(loss_cfg.pop("name", "bce_dice"), **loss_cfg)
    use_amp = bool(cfg.get("amp")) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    trainer = Trainer(
        cfg=cfg,
        ctx=ctx,
        device=device,
        sources=sources,
        train_ds=train_ds,
        sampler=sampler,
        loader=loader,
        model=model,
        net=net,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=loss_fn,
        scaler=scaler,
        use_amp=use_amp,
        encoder_weights=encoder_weights,
    )
    return trainer, mean, std


def _train_loader(
    cfg: Mapping[str, Any],
    sources: Sources,
    mean,
    std,
    ctx: ddp.Distributed,
    device: torch.device,
) -> tuple[SegmentationDataset, Any, DataLoader]:
    """The augmented training dataset, its sampler (DDP only, else None) and its loader."""
    train_ds = SegmentationDataset(
        sources.train,
        mean,
        std,
        tile_size=int(cfg["data"]["tile_size"]),
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
    return train_ds, sampler, loader


def _init_from(model: torch.nn.Module, cfg: Mapping[str, Any], ctx: ddp.Distributed) -> bool:
    """Start from another run's weights when the config's ``init_from`` names a checkpoint.

    True when weights were loaded (they then replace any ``model.encoder_weights``).
    """
    init = cfg.get("init_from")
    if not init:
        return False
    init = {"checkpoint": init} if isinstance(init, (str, os.PathLike)) else dict(init)
    if Path(init["checkpoint"]).is_file():
        n = len(transfer_weights(model, init["checkpoint"], init.get("channels")))
        if ctx.is_main:
            tqdm.write(f"init_from: {n} tensors from {init['checkpoint']}")
        return True
    elif init.get("required", True):
        raise FileNotFoundError(
            f"init_from: checkpoint {init['checkpoint']} not found (expected a run's best.pt; "
            "paths are relative to the working folder). Train that run first, or remove "
            "init_from to start from random weights."
        )
    elif ctx.is_main:
        tqdm.write(f"init_from: {init['checkpoint']} not found; starting without it")
    return False


def _wrap_network(
    model: torch.nn.Module, cfg: Mapping[str, Any], ctx: ddp.Distributed, device: torch.device
) -> torch.nn.Module:
    """The network a training step calls: ``model`` under DDP and/or ``torch.compile``."""
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
    return net


def _optimiser(cfg: Mapping[str, Any], model: torch.nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    """The config's optimiser (adam/adamw) and its LR schedule (cosine, or None)."""
    opt_cfg = dict(cfg["optimizer"])
    opt_name = opt_cfg.pop("name", "adam").lower()
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(opt_name)
    if opt_cls is None:
        raise ValueError(f"optimizer {opt_name!r}: expected adam or adamw")
    optimizer = opt_cls(
        [p for p in model.parameters() if p.requires_grad],  # not a frozen encoder's
        lr=float(opt_cfg.pop("lr", 1e-3)),
        weight_decay=float(opt_cfg.pop("weight_decay", 0.0)),
    )
    sch_cfg = dict(cfg.get("scheduler") or {})
    scheduler = None
    if sch_cfg.get("name", "cosine") == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer,
            T_max=max(1, int(cfg["epochs"])),
            eta_min=float(sch_cfg.get("min_lr", 1e-6)),
        )
    return optimizer, scheduler
