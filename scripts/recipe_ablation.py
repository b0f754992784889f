"""Side-by-side check of two v4 recipe choices the model card lists as unmeasured (issue 12): Min-SNR weighting and
the smaller unconditional (context drop-out) share. Each variant is the v4 reproduction config
(src/m3ddm/configs/repro-v4-m3ddm.yaml: 800 steps, 64x64 clips, TAEF2) with one change; the control is that
config itself, trained by scripts/reproduce_paper.py --recipe v4 (runs/repro-v4/m3ddm). Every model is sampled
from noise and at the shipped strength on the validation clips.

    python scripts/recipe_ablation.py train           # trains the variants missing in runs/recipe-ablation
    python scripts/recipe_ablation.py evaluate        # exports and evaluates every model (control included)
    python scripts/sweep_table.py runs/recipe-ablation/eval
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

BASE = Path("src/m3ddm/configs/repro-v4-m3ddm.yaml")
WORK = Path("runs/recipe-ablation")
CONTROL = Path("runs/repro-v4/m3ddm")
VARIANTS = {  # name -> (section, key, value): one change each
    "no-min-snr": ("model", "min_snr_gamma", None),
    "drop-context-0.35": ("masking", "p_drop_context", 0.35),
}
VALIDATION = Path("runs/default-v4/data/val")  # 128-pixel squares: the training clips' scale (64 px) x 2
STRENGTHS = (1.0, 0.2)
M3DDM = ".venv/bin/m3ddm"


def runs() -> dict[str, Path]:
    return {"v4": CONTROL, **{name: WORK / name for name in VARIANTS}}  # "v4": the control


def train() -> None:
    for name, (section, key, value) in VARIANTS.items():
        out = WORK / name
        if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
            print(name, "trained; kept")
            continue
        config = yaml.safe_load(BASE.read_text())
        config[section][key] = value
        config["train"]["output_dir"] = str(out)
        path = WORK / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        subprocess.run([M3DDM, "train", "--config", str(path)], check=True)


def evaluate() -> None:
    for name, run in runs().items():
        checkpoint = sorted((run / "checkpoints").iterdir())[-1]
        pipe = WORK / "pipes" / name
        if not pipe.exists():
            subprocess.run([sys.executable, "scripts/default_model_v4.py", "export", str(checkpoint),
                            "training/default-v4/vae", str(pipe), "default_size=128"], check=True)
        for strength in STRENGTHS:
            out = WORK / "eval" / f"{name}-strength-{strength}"
            if (out / "results.json").is_file():
                continue
            subprocess.run([M3DDM, "evaluate", "--data", str(VALIDATION), "--method", f"m3ddm:{pipe}",
                            "--ratio", "0.25", "--direction", "horizontal", "--no-fvd", "--no-visuals",
                            "--option", f"strength={strength}", "--option", "noise_share=0.5", "--out", str(out)],
                           check=True, stdout=subprocess.DEVNULL)
            print(name, strength, "evaluated")


if __name__ == "__main__":
    {"train": train, "evaluate": evaluate}[sys.argv[1]]()
