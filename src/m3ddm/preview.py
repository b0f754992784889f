"""What a person looks at to judge an outpainting: a contact sheet (PNG) and a side-by-side video frame.

Both show the source where it sits in the output frame (on grey, so the area to fill is visible) next to
the output, with the generated region outlined: the outline runs along the border between the source
pixels and the generated ones, so everything outside it is new.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from m3ddm.errors import UserError
from m3ddm.geometry import Geometry, Rect
from m3ddm.utils.atomic import atomic_path

PREVIEW_TIMES = 4  # columns of the contact sheet
PANEL_WIDTH = 320  # the sheet's panels are this wide (pixels)...
MAX_ENLARGE = 4.0  # ...but small outputs are enlarged at most this much
MAX_SIDE_BY_SIDE_WIDTH = 3840  # wider side-by-side frames are scaled down (H.264 players' limits)
_GREY = 96
_OUTLINE = (255, 0, 255)  # magenta: rare in natural footage
_GAP = 4


def preview_indices(num_frames: int, count: int = PREVIEW_TIMES) -> list[int]:
    """``count`` frame indices spread evenly from the first frame to the last (fewer for short videos)."""
    if num_frames <= 0:
        return []
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def source_in_output(frame: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The source frame at its place and size in the output frame, on grey."""
    known = geometry.output_known
    panel = np.full((geometry.output_h, geometry.output_w, 3), _GREY, np.uint8)
    if (frame.shape[1], frame.shape[0]) == (known.w, known.h):
        panel[known.slices] = frame
    else:
        panel[known.slices] = cv2.resize(frame, (known.w, known.h), interpolation=cv2.INTER_AREA)
    return panel


def outline_generated(frame: np.ndarray, known: Rect, thickness: int = 2) -> np.ndarray:
    """A copy of ``frame`` with a line along the edge of the known rectangle, drawn on the generated side."""
    out = frame.copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = known.x0, known.y0, known.x1, known.y1
    # Each band lies just outside the known rectangle (clipped to the frame), so no source pixel is covered.
    bands = [
        (slice(max(0, y0 - thickness), y0), slice(max(0, x0 - thickness), min(w, x1 + thickness))),
        (slice(y1, min(h, y1 + thickness)), slice(max(0, x0 - thickness), min(w, x1 + thickness))),
        (slice(max(0, y0 - thickness), min(h, y1 + thickness)), slice(max(0, x0 - thickness), x0)),
        (slice(max(0, y0 - thickness), min(h, y1 + thickness)), slice(x1, min(w, x1 + thickness))),
    ]
    for rows, cols in bands:
        out[rows, cols] = _OUTLINE
    return out


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    # Small outputs are enlarged with visible pixels (nothing invented); large ones are averaged down.
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)


def _scaled_rect(rect: Rect, scale: float) -> Rect:
    x0, y0 = round(rect.x0 * scale), round(rect.y0 * scale)
    return Rect(x0, y0, round(rect.x1 * scale) - x0, round(rect.y1 * scale) - y0)


def _header(width: int, text: str) -> np.ndarray:
    """A white strip with ``text`` in black, as wide as a panel."""
    strip = np.full((22, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def contact_sheet(
    sources: Sequence[np.ndarray], outputs: Sequence[np.ndarray], geometry: Geometry, labels: Sequence[str]
) -> np.ndarray:
    """One column per time (headed by its label): the source where it sits on top, the output with its generated
    region outlined below."""
    if not outputs or len(sources) != len(outputs) or len(labels) != len(outputs):
        raise ValueError("a contact sheet needs as many sources, outputs and labels, at least one")
    scale = min(MAX_ENLARGE, PANEL_WIDTH / geometry.output_w)
    columns = []
    for source, output, label in zip(sources, outputs, labels, strict=True):
        top = _scaled(source_in_output(source, geometry), scale)
        bottom = _scaled(output, scale)
        bottom = outline_generated(bottom, _scaled_rect(geometry.output_known, bottom.shape[1] / output.shape[1]))
        gap = np.full((_GAP, top.shape[1], 3), 255, np.uint8)
        columns.append(np.concatenate([_header(top.shape[1], label), top, gap, bottom]))
    spacer = np.full((columns[0].shape[0], _GAP, 3), 255, np.uint8)
    pieces = [columns[0]]
    for column in columns[1:]:
        pieces += [spacer, column]
    return np.concatenate(pieces, axis=1)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB image atomically (PNG, or any format OpenCV knows by the extension)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise UserError(f"cannot write the image {path} (use a .png or .jpg name)")


def side_by_side_size(geometry: Geometry) -> tuple[int, int]:
    """(width, height) of a side-by-side frame: even, at most ``MAX_SIDE_BY_SIDE_WIDTH`` wide."""
    width, height = 2 * geometry.output_w + _GAP, geometry.output_h
    scale = min(1.0, MAX_SIDE_BY_SIDE_WIDTH / width)
    width, height = round(width * scale), round(height * scale)
    return width - width % 2, height - height % 2


def side_by_side(source: np.ndarray, output: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One frame: the source where it sits (left) and the output with its generated region outlined (right)."""
    left = source_in_output(source, geometry)
    right = outline_generated(output, geometry.output_known)
    gap = np.full((geometry.output_h, _GAP, 3), 255, np.uint8)
    frame = np.concatenate([left, gap, right], axis=1)
    width, height = side_by_side_size(geometry)
    if (frame.shape[1], frame.shape[0]) != (width, height):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame)
