"""Region PSNR and warp error against strength: how much of the denoising a model should redo on a pre-fill.

    .venv/bin/python scripts/strength_sweep.py --data DIR --out REPORT_DIR [--model MODEL_DIR]
        [--strengths 0.1,0.2,0.35,0.5,0.75,1] [--ratio 0.25] [--option KEY=VALUE ...]

Runs ``m3ddm evaluate``'s protocol (:func:`m3ddm.evaluation.protocol.run_evaluation`) once for TELEA and once per
strength for the model (horizontal, one mask ratio, no FVD), then writes ``strength.md`` (a table), ``strength.json``
and ``strength.png`` (both metrics against strength, TELEA as a line). The model's own defaults (size, scheduler,
steps, guidance) apply unless ``--option`` overrides them. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from m3ddm.commands.evaluate import _options
from m3ddm.evaluation.protocol import EvalConfig, run_evaluation
from m3ddm.utils.atomic import atomic_path


def region_means(results: dict, method: str) -> dict[str, float]:
    row = next(r for r in results["summary"] if r["method"] == method and r["scope"] == "region")
    return {"psnr": row["psnr"], "ssim": row["ssim"], "warp_error": row["warp_error"], "flicker": row["flicker"]}


def sweep(data: Path, out: Path, model: str | None, strengths: list[float], ratio: float, options: dict) -> dict:
    method = f"m3ddm:{model}" if model else "m3ddm"
    work = out / "runs"
    base = dict(data=data, ratios=[ratio], fvd=False, visuals=False)
    telea = run_evaluation(EvalConfig(out=work / "telea", methods=["telea"], **base))
    rows = []
    for strength in strengths:
        print(f"strength {strength}", file=sys.stderr, flush=True)
        result = run_evaluation(EvalConfig(out=work / f"strength-{strength}", methods=[method],
                                           method_options={**options, "strength": strength}, **base))
        rows.append({"strength": strength, **region_means(result, method)})
    return {"data": str(data), "model": model or "default", "ratio": ratio, "options": options,
            "telea": region_means(telea, "telea"), "rows": rows}


def table(report: dict) -> str:
    t = report["telea"]
    lines = [f"Region scores on `{report['data']}`, horizontal ratio {report['ratio']}, model `{report['model']}`"
             f"{', options ' + json.dumps(report['options']) if report['options'] else ''}.", "",
             "| strength | PSNR ↑ | ΔPSNR vs TELEA | SSIM ↑ | warp err ↓ | flicker |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['strength']:g} | {r['psnr']:.2f} | {r['psnr'] - t['psnr']:+.2f} | {r['ssim']:.4f} | "
                     f"{r['warp_error']:.5f} | {r['flicker']:.4f} |")
    lines.append(f"| TELEA | {t['psnr']:.2f} | 0 | {t['ssim']:.4f} | {t['warp_error']:.5f} | {t['flicker']:.4f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["strength"] for r in report["rows"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((axes[0], "psnr", "region PSNR (dB) ↑"), (axes[1], "warp_error", "region warp error ↓")):
        ax.plot(xs, [r[key] for r in report["rows"]], "o-", label="m3ddm")
        ax.axhline(report["telea"][key], color="grey", linestyle="--", label="TELEA")
        ax.set_xlabel("strength (share of the denoising redone)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{Path(report['data']).name}, ratio {report['ratio']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model")
    parser.add_argument("--strengths", default="0.1,0.2,0.35,0.5,0.75,1")
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    report = sweep(args.data, args.out, args.model, [float(s) for s in args.strengths.split(",")], args.ratio,
                   _options(args.option))
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "strength.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_path(args.out / "strength.md") as tmp:
        tmp.write_text(table(report))
    plot(report, args.out / "strength.png")
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
