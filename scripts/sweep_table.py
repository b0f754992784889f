"""Print one row per `m3ddm evaluate` report under a folder: region PSNR, SSIM, warp error, flicker, seam ratio.

    python scripts/sweep_table.py runs/default-v4/wide-sweep [runs/default-v4/wide-base ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(folder: Path):
    for results in sorted(folder.glob("**/results.json")):
        summary = json.loads(results.read_text())["summary"]
        for region in (s for s in summary if s["scope"] == "region"):
            full = next(s for s in summary if s["scope"] == "full" and s["method"] == region["method"])
            yield (results.parent.name, region["method"], region["psnr"], region["ssim"], region["warp_error"],
                   region["flicker"], full["seam_ratio"])


if __name__ == "__main__":
    print("| run | method | region PSNR | SSIM | warp error | flicker | seam ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for folder in sys.argv[1:]:
        for run, method, psnr, ssim, warp, flicker, seam in rows(Path(folder)):
            print(f"| {run} | {method} | {psnr:.2f} | {ssim:.3f} | {warp:.5f} | {flicker:.4f} | {seam:.2f} |")
