"""Weights-only snapshots: how a long training campaign goes on across sessions without committing optimizer state.

A snapshot folder holds

``unet_ema/``      the EMA weights (an ``M3DDMUNet`` folder, float16 by default)
``unet_raw/``      the raw weights the optimizer was moving (same layout)
``snapshot.json``  the step, the EMA's update count and the clips seen, so a warm start continues the numbering

A snapshot is made from a training checkpoint (``make_snapshot``), is small enough to commit (two float16 copies of
the UNet), and starts a new run with ``m3ddm train --warm-start DIR``: the raw weights go into the model, the EMA
continues from its weights and count, the sample numbers continue after the snapshot's step, and the optimizer and
learning-rate schedule start fresh (Adam's moments re-estimate within its warm-up). Everything is written to a
temporary folder and renamed, so an interrupted write never leaves a half snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from m3ddm.errors import UserError
from m3ddm.training import checkpoint as ckpt
from m3ddm.utils.atomic import atomic_path
from m3ddm.utils.state_dict import save_pretrained_as

SNAPSHOT_FILE = "snapshot.json"
EMA_FOLDER, RAW_FOLDER = "unet_ema", "unet_raw"
_EMA_STATE = "custom_checkpoint_0.pkl"  # the first object registered for checkpointing in train(): the EMA


@dataclass(frozen=True)
class Snapshot:
    step: int
    ema_updates: int
    clips_seen: int


def unet_from_checkpoint(checkpoint: Path, averaged: bool = False):
    """The UNet of an accelerate checkpoint written by ``train`` with its raw weights, or with the EMA weights when
    ``averaged`` (raw when the run had no EMA)."""
    unet, ema = _unet_and_ema(checkpoint)
    if averaged and ema is not None:
        _load_ema_into(unet, ema)
    return unet


def _load_ema_into(unet, ema: dict) -> None:
    shadow = {**ema["shadow"], **ema["buffers"]}
    unet.load_state_dict({k: shadow.get(k, v) for k, v in unet.state_dict().items()}, strict=True)


def _unet_and_ema(checkpoint: Path):
    """The raw UNet and the EMA state dict of an accelerate checkpoint written by ``train``."""
    import yaml
    from safetensors.torch import load_file

    from m3ddm.training.config import config_from_dict
    from m3ddm.training.loop import build_unet

    config = config_from_dict(yaml.safe_load((checkpoint / "training_config.yaml").read_text()))
    weights = load_file(str(checkpoint / "model.safetensors"))
    raw = {key.removeprefix("unet."): value for key, value in weights.items()}
    channels = (raw["conv_in.weight"].shape[1] - 1) // 2  # noisy latents + masked context + mask in
    # the architecture only: the weights come from the checkpoint, whatever the run was initialised from
    unet = build_unet(replace(config, model=replace(config.model, init="scratch")), channels)
    unet.load_state_dict(raw, strict=True)
    ema_file = checkpoint / _EMA_STATE
    ema = torch.load(ema_file, map_location="cpu", weights_only=False) if ema_file.is_file() else None
    return unet, ema


def make_snapshot(checkpoint: str | os.PathLike, out: str | os.PathLike, dtype: torch.dtype = torch.float16) -> Path:
    """Write the snapshot of ``checkpoint`` (a ``step-*`` folder, or a run folder: its latest checkpoint) to ``out``."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / ckpt.STATE_FILE).is_file():
        latest = ckpt.latest_checkpoint(checkpoint)
        if latest is None:
            raise UserError(f"no training checkpoint in {checkpoint}")
        checkpoint = latest
    state = json.loads((checkpoint / ckpt.STATE_FILE).read_text())
    unet, ema = _unet_and_ema(checkpoint)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for entry in out.iterdir() if out.is_dir() else ():  # what lives beside a snapshot (a codec, a README) stays
            if entry.name not in (RAW_FOLDER, EMA_FOLDER, SNAPSHOT_FILE):
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, tmp / entry.name)
        save_pretrained_as(unet, tmp / RAW_FOLDER, dtype)
        if ema is not None:
            _load_ema_into(unet, ema)
        save_pretrained_as(unet, tmp / EMA_FOLDER, dtype)
        facts = {"step": int(state["step"]), "ema_updates": int(ema["num_updates"]) if ema else 0,
                 "clips_seen": int(state.get("clips_seen", 0)), "from": checkpoint.name}
        (tmp / SNAPSHOT_FILE).write_text(json.dumps(facts, indent=1) + "\n")
    return out


def read_snapshot(folder: str | os.PathLike) -> Snapshot:
    folder = Path(folder)
    meta = folder / SNAPSHOT_FILE
    if not meta.is_file() or not (folder / RAW_FOLDER).is_dir():
        raise UserError(f"not a weights snapshot (no {SNAPSHOT_FILE} and {RAW_FOLDER}/): {folder}")
    try:
        facts = json.loads(meta.read_text())
        return Snapshot(int(facts["step"]), int(facts.get("ema_updates", 0)), int(facts.get("clips_seen", 0)))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"unreadable {meta}: {exc}") from None


def load_snapshot(folder: str | os.PathLike, unet, ema=None) -> Snapshot:
    """Put a snapshot's raw weights into ``unet`` and its EMA weights into ``ema``; returns its facts.

    UserError when the snapshot does not fit the model (another config)."""
    from m3ddm.models import M3DDMUNet

    folder = Path(folder)
    facts = read_snapshot(folder)
    try:
        raw = M3DDMUNet.from_pretrained(folder / RAW_FOLDER).state_dict()
        unet.load_state_dict(raw, strict=True)
        if ema is not None and (folder / EMA_FOLDER).is_dir():
            averaged = M3DDMUNet.from_pretrained(folder / EMA_FOLDER).state_dict()
            ema.load_state_dict({
                "decay": ema.decay, "warmup": ema.warmup, "num_updates": facts.ema_updates,
                "shadow": {k: averaged[k] for k in ema.shadow}, "buffers": {k: averaged[k] for k in ema.buffers},
            })
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the snapshot {folder} does not fit this config's model: {first}") from None
    return facts
