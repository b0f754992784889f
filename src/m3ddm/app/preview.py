"""A picture of what an outpaint will do, before it runs: the first frame placed on the output canvas, the
region to generate pre-filled (as the model starts from it), shaded, hatched and outlined.

Shared by the web app and the ComfyUI "M3DDM Plan Preview" node; numpy and OpenCV only (no gradio, no torch).
"""

from __future__ import annotations

import cv2
import numpy as np

from m3ddm.canvas import prefill_telea, resize
from m3ddm.geometry import Geometry, Rect

OUTLINE_RGB = (255, 60, 170)  # magenta: stands out against most footage
SHADE_RGB = np.array([96, 96, 110], np.float32)


def generated_bands(width: int, height: int, known: Rect) -> list[Rect]:
    """The rectangles of a ``width x height`` frame outside ``known``: top, bottom, left, right (empty ones left
    out)."""
    bands = [
        Rect(0, 0, width, known.y0),
        Rect(0, known.y1, width, height - known.y1),
        Rect(0, known.y0, known.x0, known.h),
        Rect(known.x1, known.y0, width - known.x1, known.h),
    ]
    return [b for b in bands if b.w > 0 and b.h > 0]


def plan_preview(frame: np.ndarray, geometry: Geometry, max_side: int = 640, thickness: int = 2) -> np.ndarray:
    """An RGB uint8 image of the output frame at most ``max_side`` pixels long: the source where it will stay, the
    region to generate filled by TELEA (the model's starting point), shaded and hatched, each band outlined."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise ValueError(f"expected an H x W x 3 frame, got {frame.shape}")
    frame = np.ascontiguousarray(frame[..., :3]).astype(np.uint8, copy=False)
    out_w, out_h = geometry.output_w, geometry.output_h
    scale = min(1.0, max_side / max(out_w, out_h))  # the preview is for the eye: never upscale
    width, height = max(8, round(out_w * scale)), max(8, round(out_h * scale))
    k = geometry.output_known
    x0, y0 = round(k.x0 * width / out_w), round(k.y0 * height / out_h)
    x1, y1 = max(x0 + 1, round(k.x1 * width / out_w)), max(y0 + 1, round(k.y1 * height / out_h))
    known = Rect(x0, y0, x1 - x0, y1 - y0)

    image = np.zeros((height, width, 3), np.uint8)
    image[known.slices] = resize(frame, known.w, known.h)
    mask = np.ones((height, width), np.uint8)
    mask[known.slices] = 0
    filled = prefill_telea(image, mask).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    hatch = (((xx + yy) // 6) % 2 == 0)[..., None]  # diagonal stripes say "not real yet"
    shaded = 0.55 * filled + 0.45 * SHADE_RGB - 18.0 * hatch
    border = mask.astype(bool)
    image[border] = np.clip(shaded, 0, 255).astype(np.uint8)[border]
    for band in generated_bands(width, height, known):
        cv2.rectangle(image, (band.x0, band.y0), (band.x1 - 1, band.y1 - 1), OUTLINE_RGB, thickness)
    return image


def describe(geometry: Geometry) -> str:
    """One line for people: output size and what is added on each side (in source pixels)."""
    left, top, right, bottom = geometry.pads
    sides = [f"{name} {value:.0f}" for name, value in
             (("left", left), ("top", top), ("right", right), ("bottom", bottom)) if value > 0.5]
    return (f"{geometry.src_w}x{geometry.src_h} -> {geometry.output_w}x{geometry.output_h} "
            f"(adds {', '.join(sides) or 'nothing'} px; working canvas {geometry.canvas_w}x{geometry.canvas_h})")
