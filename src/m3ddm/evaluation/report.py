"""Evaluation outputs: a Table-1-style report (markdown, CSV, JSON) and per-clip visuals.

Per clip and ratio: a side-by-side video (input | each method | ground truth) and a contact-sheet PNG
(three frames: first, middle, last; same columns). The known rectangle is outlined with a thin red line
in every panel. Every file is written atomically.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from m3ddm.utils.atomic import atomic_path

TABLE_METRICS = (
    ("mse", "MSE ↓", "{:.5f}"),
    ("psnr", "PSNR ↑", "{:.2f}"),
    ("ssim", "SSIM ↑", "{:.4f}"),
    ("detail", "Detail (1 = truth)", "{:.2f}"),
    ("lpips", "LPIPS ↓", "{:.4f}"),
    ("fvd", "FVD ↓", "{:.1f}"),
)
TEMPORAL_COLUMNS = (("warp_error", "Warp err ↓", "{:.5f}"), ("flicker", "Flicker", "{:.4f}"))
CSV_COLUMNS = (
    "method",
    "ratio",
    "scope",
    "clips",
    "mse",
    "psnr",
    "ssim",
    "detail",
    "lpips",
    "fvd",
    "warp_error",
    "flicker",
    "seam_ratio",
    "seam_step",
    "seam_inside",
    "seam_gt",
)
SEAM_COLUMNS = (
    ("seam_ratio", "Seam ratio", "{:.2f}"),
    ("seam_step", "Seam step", "{:.4f}"),
    ("seam_inside", "Inside step", "{:.4f}"),
)
LINE_COLOUR = (255, 0, 0)  # RGB red
MAX_VIDEO_WIDTH = 1920
SHEET_PANEL_WIDTH = 320
PANEL_GAP = 2  # grey pixels between panels


def json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, str):  # an "n/a (reason)": the reasons are listed under the tables
        return "n/a*"
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return fmt.format(value)


def markdown_tables(summary: Sequence[dict[str, Any]]) -> str:
    """Table 1 style: rows = methods, one column group per ratio (and "all"), for each scope; then the seam
    metric (from the full-frame rows) with the ground truth's ratio as the last row."""
    methods = list(dict.fromkeys(row["method"] for row in summary))
    ratios = list(dict.fromkeys(row["ratio"] for row in summary))
    index = {(r["method"], r["ratio"], r["scope"]): r for r in summary}
    parts = []
    titles = {"full": "Full frame", "region": "Generated region only"}
    for scope in ("full", "region"):
        for columns, label in ((TABLE_METRICS, ""), (TEMPORAL_COLUMNS, " -- temporal consistency")):
            parts.append(f"### {titles[scope]}{label}\n")
            head = ["Method"] + [f"{name} ({ratio})" for ratio in ratios for _, name, _ in columns]
            parts.append("| " + " | ".join(head) + " |")
            parts.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
            for method in methods:
                cells = [method]
                for ratio in ratios:
                    row = index.get((method, ratio, scope), {})
                    cells += [_cell(row.get(key), fmt) for key, _, fmt in columns]
                parts.append("| " + " | ".join(cells) + " |")
            parts.append("")
    parts.append("### Seam (1 = no visible seam; the ground truth's own ratio for reference)\n")
    head = ["Method"] + [f"{name} ({ratio})" for ratio in ratios for _, name, _ in SEAM_COLUMNS]
    parts.append("| " + " | ".join(head) + " |")
    parts.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for method in methods:
        cells = [method]
        for ratio in ratios:
            row = index.get((method, ratio, "full"), {})
            cells += [_cell(row.get(key), fmt) for key, _, fmt in SEAM_COLUMNS]
        parts.append("| " + " | ".join(cells) + " |")
    if methods:  # the ground truth's ratio is the same in every method's rows
        cells = ["ground truth"]
        for ratio in ratios:
            row = index.get((methods[0], ratio, "full"), {})
            cells += [_cell(row.get("seam_gt"), "{:.2f}"), "", ""]
        parts.append("| " + " | ".join(cells) + " |")
    parts.append("")
    return "\n".join(parts)


def _na_reasons(summary: Sequence[dict[str, Any]]) -> list[str]:
    reasons = sorted(
        {f"{key.upper()}: {row[key]}" for row in summary for key in ("lpips", "fvd") if isinstance(row.get(key), str)}
    )
    return reasons


def write_report(results: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``report.md``, ``results.csv`` and ``results.json`` into ``out_dir``; return their paths.

    When ``results`` holds ``per_frame`` rows (``protocol.per_frame_rows``), they go to ``per_frame.csv`` (one row
    per clip, ratio, method and frame) instead of ``results.json``, which keeps only the per-video scores."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = results["summary"]
    config = results.get("config", {})
    lines = [
        "# Video outpainting evaluation\n",
        f"Data: `{config.get('data')}` ({len(config.get('clips', []))} clips), direction "
        f"{config.get('direction')}, mask ratios {', '.join(str(r) for r in config.get('ratios', []))}"
        f"{', max ' + str(config['max_frames']) + ' frames' if config.get('max_frames') else ''}"
        f"{', short side ' + str(config['size']) + ' px' if config.get('size') else ''}.\n",
        "Values are means over clips; a ratio group 'all' pools every ratio (FVD over the pooled sets).\n",
        markdown_tables(summary),
    ]
    reasons = _na_reasons(summary)
    if reasons:
        lines += ["\\* Unavailable:\n", *[f"- {r}" for r in reasons], ""]
    lines += ["## Protocol\n", *[f"- **{k}**: {v}" for k, v in results.get("protocol", {}).items()], ""]
    if results.get("visuals"):
        lines += ["## Per-clip visuals\n"]
        lines += [
            f"- {v['clip']} (ratio {v['ratio']}): [video]({v['video']}), [contact sheet]({v['sheet']})"
            for v in results["visuals"]
        ]
        lines.append("")
    paths = {"markdown": out / "report.md", "csv": out / "results.csv", "json": out / "results.json"}
    per_frame = results.get("per_frame")
    if per_frame:
        paths["per_frame"] = out / "per_frame.csv"
        columns = list(dict.fromkeys(key for row in per_frame for key in row))
        with atomic_path(paths["per_frame"]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in per_frame:
                writer.writerow({k: "" if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()})
    results = {k: v for k, v in results.items() if k != "per_frame"}
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in summary:
            writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(json_safe(results), indent=2, allow_nan=False), encoding="utf-8")
    return paths


# ------------------------------------------------------------------------------------------------ visuals


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "clip"


def _outline(frame: np.ndarray, pad_px: Sequence[int]) -> np.ndarray:
    left, top, right, bottom = pad_px
    h, w = frame.shape[:2]
    out = frame.copy()
    cv2.rectangle(out, (left, top), (w - right - 1, h - bottom - 1), LINE_COLOUR, 1)
    return out


def _label(frame: np.ndarray, text: str) -> np.ndarray:
    out = frame.copy()
    scale = max(0.35, min(1.0, frame.shape[1] / 400))
    org = (4, int(14 * scale + 6))
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _panels(gt: np.ndarray, pad_px: Sequence[int], outputs: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    left, top, right, bottom = pad_px
    h, w = gt.shape[1:3]
    masked = np.zeros_like(gt)
    masked[:, top : h - bottom, left : w - right] = gt[:, top : h - bottom, left : w - right]
    return [("input", masked), *outputs.items(), ("ground truth", gt)]


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def _row(panels: list[tuple[str, np.ndarray]], t: int, pad_px: Sequence[int], scale: float, labels: bool) -> np.ndarray:
    h, w = panels[0][1].shape[1:3]
    pw, ph = max(2, int(round(w * scale))), max(2, int(round(h * scale)))
    sx, sy = pw / w, ph / h
    scaled_pads = (
        int(round(pad_px[0] * sx)),
        int(round(pad_px[1] * sy)),
        int(round(pad_px[2] * sx)),
        int(round(pad_px[3] * sy)),
    )
    gap = np.full((ph, PANEL_GAP, 3), 64, dtype=np.uint8)
    cells = []
    for name, frames in panels:
        cell = _outline(_resize(frames[t], pw, ph), scaled_pads)
        cells += [_label(cell, name) if labels else cell, gap]
    return np.concatenate(cells[:-1], axis=1)


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def write_clip_visuals(
    out_dir: str | os.PathLike,
    clip: str,
    ratio: str,
    gt: np.ndarray,
    pad_px: Sequence[int],
    outputs: dict[str, np.ndarray],
    fps: float,
) -> dict[str, str]:
    """Side-by-side MP4 and contact-sheet PNG for one clip and ratio; returns their report-relative paths."""
    from m3ddm.io import write_video

    out = Path(out_dir)
    stem = f"{_safe_name(clip)}_r{ratio}"
    video_path, sheet_path = out / "clips" / f"{stem}.mp4", out / "clips" / f"{stem}.png"
    panels = _panels(gt, pad_px, outputs)
    width = gt.shape[2]
    video_scale = min(1.0, MAX_VIDEO_WIDTH / (width * len(panels)))
    write_video(video_path, (_even(_row(panels, t, pad_px, video_scale, True)) for t in range(len(gt))), fps)
    sheet_scale = min(1.0, SHEET_PANEL_WIDTH / width)
    picks = sorted({0, len(gt) // 2, len(gt) - 1})
    sheet = np.concatenate([_row(panels, t, pad_px, sheet_scale, labels=(i == 0)) for i, t in enumerate(picks)])
    sheet_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(sheet_path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {sheet_path}")
    return {
        "clip": clip,
        "ratio": ratio,
        "video": str(video_path.relative_to(out)),
        "sheet": str(sheet_path.relative_to(out)),
    }
