"""A training run's held-out curve as the pipeline uses the model: region PSNR per checkpoint at the shipped settings.

    python scripts/pipeline_curve.py RUN [--every-steps 1000] [--origin 0] [--data runs/default-v4/data/val-wide]
        [--settings src/m3ddm/weights/default] [--noise] [--with-last] [--from-step 0]

The v-MSE of scripts/heldout_curve.py averages the whole schedule; the shipped pipeline runs one step at 20 % noise
(or one from pure noise), and the two rank checkpoints differently (model card, after the twenty-first rule). For
each checkpoint of RUN whose step is --origin plus a multiple of --every-steps (and, with --with-last, the last one),
this exports an inference folder with the settings of the --settings pipeline (RUN/curve/pipe-STEP), evaluates it on
--data (horizontal, ratio 0.25, no FVD) and, with --noise, from noise too (strength 1); the real clips' mean (val-wide's
bigbuckbunny crops) is a column of its own. Results are kept in
RUN/curve/ and reused while the settings stay the same (an
export under other settings is redone and its old results renamed *.stale); prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from m3ddm.training import checkpoint as ckpt

CODEC = Path("training/default-v4/vae")


def shipped_settings(folder: Path) -> dict:
    """The pipeline defaults of a shipped folder (guidance is the export's (1, 1)); how the context is encoded is the
    trained model's own (its training config), not a default to carry over."""
    index = json.loads((folder / "model_index.json").read_text())
    return {k: v for k, v in index.items() if k.startswith("default_") and k != "default_guidance"}


def _settings(folder: Path) -> list[str]:
    """:func:`shipped_settings` as KEY=VALUE arguments (VALUE in JSON) for scripts/default_model_v4.py export."""
    return [f"{k}={json.dumps(v)}" for k, v in shipped_settings(folder).items()]


def _stale(pipe: Path, settings: list[str]) -> bool:
    """Whether an exported folder's settings differ from ``settings`` (KEY=VALUE, VALUE in JSON)."""
    index = json.loads((pipe / "model_index.json").read_text())
    return any(json.dumps(index.get(key)) != value for key, value in (s.split("=", 1) for s in settings))


REAL_CLIPS = "bigbuckbunny"  # val-wide's real footage (the rest are synthetic pans): reported apart


def _region(out: Path) -> dict[str, float]:
    rows = list(csv.DictReader((out / "results.csv").open()))
    region = next(r for r in rows if r["scope"] == "region")
    full = next(r for r in rows if r["scope"] == "full")
    # the real clips apart: a whole-set mean can rise on the synthetic pans while real footage falls (model card,
    # twenty-seventh rule)
    clips = json.loads((out / "results.json").read_text())["clips"]
    real = [c["region"]["psnr"] for c in clips if c["clip"].startswith(REAL_CLIPS)]
    return {"psnr": float(region["psnr"]), "warp": float(region["warp_error"]), "seam": float(full["seam_ratio"]),
            "real": sum(real) / len(real) if real else float("nan")}


def _evaluate(pipe: Path, data: Path, out: Path, options: list[str]) -> dict[str, float]:
    if not (out / "results.csv").is_file():
        command = [sys.executable, "-m", "m3ddm", "evaluate", "--data", str(data), "--method", f"m3ddm:{pipe}",
                   "--ratio", "0.25", "--direction", "horizontal", "--no-fvd", "--no-visuals", "--out", str(out)]
        for option in options:
            command += ["--option", option]
        with (out.parent / (out.name + ".log")).open("w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    return _region(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--every-steps", type=int, default=1000)
    parser.add_argument("--origin", type=int, default=0, help="the steps taken are origin + k * every-steps")
    parser.add_argument("--data", type=Path, default=Path("runs/default-v4/data/val-wide"))
    parser.add_argument("--settings", type=Path, default=Path("src/m3ddm/weights/default"))
    parser.add_argument("--noise", action="store_true", help="also evaluate from noise (strength 1)")
    parser.add_argument("--with-last", action="store_true", help="also the last checkpoint, whatever its step")
    parser.add_argument("--from-step", type=int, default=0, help="skip the checkpoints before this step")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    curve = args.run / "curve"
    curve.mkdir(exist_ok=True)
    checkpoints = ckpt.list_checkpoints(args.run)
    print("| step | region PSNR | real clips | warp error | seam ratio |"
          + (" from noise: region PSNR | real clips | warp error |" if args.noise else ""))
    print("|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if args.noise else ""), flush=True)
    for step, path in checkpoints:
        if step < args.from_step:
            continue
        if (step - args.origin) % args.every_steps and not (args.with_last and step == checkpoints[-1][0]):
            continue
        pipe = curve / f"pipe-{step}"
        settings = _settings(args.settings)
        if pipe.is_dir() and _stale(pipe, settings):  # exported under other settings: its results are theirs
            shutil.rmtree(pipe)
            for old in curve.glob(f"*-{step}*"):
                old.replace(old.with_name(old.name + ".stale"))
        if not pipe.is_dir():
            subprocess.run([sys.executable, "scripts/default_model_v4.py", "export", str(path), str(CODEC), str(pipe),
                            *settings], check=True, stdout=subprocess.DEVNULL)
        row = _evaluate(pipe, args.data, curve / f"{args.data.name}-{step}", [])
        line = f"| {step} | {row['psnr']:.2f} | {row['real']:.2f} | {row['warp']:.5f} | {row['seam']:.2f} |"
        if args.noise:
            noise = _evaluate(pipe, args.data, curve / f"{args.data.name}-{step}-noise", ["strength=1"])
            line += f" {noise['psnr']:.2f} | {noise['real']:.2f} | {noise['warp']:.5f} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
