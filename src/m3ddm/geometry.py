"""Where things go: target frame, working canvas, known rectangle, masks, crop and output size. Pure numpy.

Coordinates: the *target* frame is measured in source pixels (pads may be fractional); the *working canvas*
is what the diffusion model sees (sides multiples of 8); the *output* is what gets written.

Canvas modes:

* ``"target"`` (default): the canvas has the target's aspect, long side ``size``. No pixels are spent on
  areas that are cropped away later.
* ``"square"``: the official behaviour (spec section 9, ``preprocess_frames_speed_square``): a
  ``size x size`` canvas, the bounding target of side S scaled by ``size / S`` and centred; the target is
  cropped out of the square at the end.

Output modes:

* ``"full"`` (default): the source pixels are kept unchanged at full resolution; the output frame is the
  target in source pixels, rounded so both sides are even (H.264 yuv420p), with the source at integer
  offsets. ``output_size=(W, H)`` picks another size (the source is then resized too).
* ``"official"``: everything stays at the working size (the target cropped from the canvas, each side
  rounded down to even), as the official driver writes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from m3ddm.errors import UserError

LATENT_FACTOR = 8
MIN_KNOWN_FRACTION = 0.25  # the paper trains with mask ratios up to 0.75
SAME_RATIO_TOLERANCE = 0.01
_EPS = 1e-6  # guards int() truncation of values that are whole in exact arithmetic (e.g. 256 * 9 / 16)

CANVAS_MODES = ("target", "square")
OUTPUT_MODES = ("full", "official")


@dataclass(frozen=True)
class Rect:
    """An integer rectangle: top-left corner (x0, y0), width w and height h."""

    x0: int
    y0: int
    w: int
    h: int

    @property
    def x1(self) -> int:
        return self.x0 + self.w

    @property
    def y1(self) -> int:
        return self.y0 + self.h

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index an HxW(xC) array: ``array[rect.slices]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


@dataclass(frozen=True)
class Pad:
    """Pads on the four sides, either all fractions of the source size or all pixels."""

    left: float
    top: float
    right: float
    bottom: float
    unit: str  # "fraction" (of the source width for left/right, height for top/bottom) or "pixel"

    def in_pixels(self, src_h: int, src_w: int) -> tuple[float, float, float, float]:
        if self.unit == "pixel":
            return (float(self.left), float(self.top), float(self.right), float(self.bottom))
        return (self.left * src_w, self.top * src_h, self.right * src_w, self.bottom * src_h)


@dataclass(frozen=True)
class TargetRatio:
    """One of several target ratios: its value (width / height) and its label for file names (``"9-16"``)."""

    label: str
    value: float


@dataclass(frozen=True)
class Geometry:
    """Everything about where pixels go for one video (see the module docstring for the modes)."""

    src_h: int
    src_w: int
    pads: tuple[float, float, float, float]  # left, top, right, bottom in source pixels
    canvas_mode: str
    canvas_h: int
    canvas_w: int
    known: Rect  # the source inside the canvas
    crop: Rect  # the target inside the canvas (the whole canvas for "target")
    output_mode: str  # "full", "size" (an explicit output_size) or "official"
    output_h: int
    output_w: int
    output_known: Rect  # the source inside the output frame
    # --official-compat: the official driver's float truncation of the pasted size and its resize filter (bilinear on
    # float pixels, truncated), instead of our exact rounding and anti-aliased shrinking
    official: bool = False

    @property
    def ratio(self) -> float:
        """The target's width / height."""
        return self.target_w / self.target_h

    @property
    def target_w(self) -> float:
        return self.src_w + self.pads[0] + self.pads[2]

    @property
    def target_h(self) -> float:
        return self.src_h + self.pads[1] + self.pads[3]

    @property
    def mask(self) -> np.ndarray:
        """Canvas mask, ``canvas_h x canvas_w`` uint8: 1 = generate, 0 = known (source)."""
        return known_rect_mask(self.canvas_h, self.canvas_w, self.known)

    @property
    def output_mask(self) -> np.ndarray:
        """Output mask, ``output_h x output_w`` uint8: 1 = generated border, 0 = source."""
        return known_rect_mask(self.output_h, self.output_w, self.output_known)


def known_rect_mask(height: int, width: int, known: Rect) -> np.ndarray:
    mask = np.ones((height, width), dtype=np.uint8)
    mask[known.slices] = 0
    return mask


def latent_mask(mask: np.ndarray, factor: int = LATENT_FACTOR) -> np.ndarray:
    """Downsample a pixel mask like the official pipeline: nearest sampling at index ``factor * i``."""
    mask = np.asarray(mask)
    rows, cols = mask.shape[0] // factor * factor, mask.shape[1] // factor * factor
    return mask[:rows:factor, :cols:factor].copy()


def check_ratio(ratio: float) -> float:
    """A target aspect ratio (width / height) must be a positive finite number."""
    if isinstance(ratio, str) or not (math.isfinite(ratio) and ratio > 0):
        raise UserError(f"the aspect ratio must be a positive number (width / height), got {ratio!r}")
    return float(ratio)


def check_pad(pad: Pad) -> Pad:
    """Pads are zero or positive, not all zero, and fractions below 1 (pixel pads may be fractional inside, as
    the bounding target of several ratios is; the CLI takes whole pixels)."""
    if not isinstance(pad, Pad):
        raise UserError(f"pads must be a Pad (parse user text with m3ddm.commands.arguments), got {pad!r}")
    numbers = (pad.left, pad.top, pad.right, pad.bottom)
    if pad.unit not in ("fraction", "pixel"):
        raise UserError(f"a pad's unit is 'fraction' or 'pixel', got {pad.unit!r}")
    if not all(math.isfinite(x) and x >= 0 for x in numbers):
        raise UserError(f"pads must be zero or positive, got {numbers}")
    if not any(numbers):
        raise UserError("all pads are zero: nothing to outpaint")
    if pad.unit == "fraction" and any(x >= 1 for x in numbers):
        raise UserError(f"fraction pads must be below 1, got {numbers}")
    return pad


def round_to_multiple(value: float, multiple: int = LATENT_FACTOR) -> int:
    """Nearest positive multiple, halves rounded up (at least ``multiple`` itself)."""
    return max(multiple, _round_half_up(value / multiple) * multiple)


def target_pads(src_h: int, src_w: int, ratio: float) -> tuple[float, float, float, float]:
    """Pads in source pixels that reach ``ratio`` by growing one axis, source centred."""
    if src_w / src_h < ratio:
        grow = ratio * src_h - src_w
        return (grow / 2, 0.0, grow / 2, 0.0)
    grow = src_w / ratio - src_h
    return (0.0, grow / 2, 0.0, grow / 2)


def bounding_pads(src_h: int, src_w: int, ratios: Sequence[TargetRatio]) -> tuple[float, float, float, float]:
    """Pads in source pixels of the smallest centred target that holds every ratio's target (the official
    driver's ``--target_ratio_list``: one generation, one crop per ratio)."""
    values = [check_ratio(r.value) for r in ratios]
    if len(values) < 2:
        raise UserError("several target ratios need at least two, like 9:16,1:1")
    labels = [r.label for r in ratios]
    if len(set(labels)) < len(labels) or any(math.isclose(a, b, rel_tol=1e-6)
                                             for i, a in enumerate(values) for b in values[i + 1:]):
        raise UserError(f"the target ratios {','.join(labels)} repeat one ratio")
    for label, ratio in zip(labels, values, strict=True):
        if abs(ratio / (src_w / src_h) - 1) < SAME_RATIO_TOLERANCE:
            raise UserError(f"the video already has the aspect ratio {label}: nothing to do for it")
    each = [target_pads(src_h, src_w, r) for r in values]
    return tuple(max(pads[i] for pads in each) for i in range(4))


def ratio_crop(bounding: Geometry, ratio: float) -> tuple[Rect, Geometry]:
    """Where one ratio's target lies in the output frame of the ``bounding`` geometry (full-resolution output),
    and that target's own geometry (its output frame is the crop; its source sits where the crop's does)."""
    if bounding.output_mode != "full":
        raise UserError("several target ratios write full-resolution outputs: drop --output-size/--official-output")
    own = plan_geometry(bounding.src_h, bounding.src_w, ratio=ratio, size=max(bounding.canvas_w, bounding.canvas_h))
    w, h = min(own.output_w, bounding.output_w), min(own.output_h, bounding.output_h)
    x0 = min(max(0, bounding.output_known.x0 - own.output_known.x0), bounding.output_w - w)
    y0 = min(max(0, bounding.output_known.y0 - own.output_known.y0), bounding.output_h - h)
    known = Rect(bounding.output_known.x0 - x0, bounding.output_known.y0 - y0, own.output_known.w, own.output_known.h)
    return Rect(x0, y0, w, h), replace(own, output_w=w, output_h=h, output_known=known)


def plan_geometry(
    src_h: int,
    src_w: int,
    *,
    ratio: float | None = None,
    pad: Pad | None = None,
    size: int = 256,
    canvas: str = "target",
    output: str = "full",
    output_size: tuple[int, int] | None = None,
    official: bool = False,
) -> Geometry:
    """Compute the geometry for a ``src_h x src_w`` video; give exactly one of ``ratio`` and ``pad``.

    ``size`` is the working canvas's long side (rounded to a multiple of 8). ``output_size`` is (W, H).
    ``official`` (square canvas only) pastes the source as the official driver rounds it (see ``Geometry``).
    """
    if src_h < 1 or src_w < 1:
        raise UserError(f"the source frames have no pixels ({src_w}x{src_h})")
    if (ratio is None) == (pad is None):
        raise UserError("give exactly one of a target ratio or pads")
    if canvas not in CANVAS_MODES:
        raise UserError(f"unknown canvas mode {canvas!r}; choose one of {', '.join(CANVAS_MODES)}")
    if output not in OUTPUT_MODES:
        raise UserError(f"unknown output mode {output!r}; choose one of {', '.join(OUTPUT_MODES)}")
    if output == "official" and output_size is not None:
        raise UserError("an output size cannot be combined with the official output mode")
    if not size or size < 1:
        raise UserError(f"the working size must be positive, got {size}")
    if official and canvas != "square":
        raise UserError("the official geometry is the square canvas (--canvas square)")
    size = round_to_multiple(size)

    source_ratio = src_w / src_h
    if ratio is not None:
        ratio = check_ratio(ratio)
        if abs(ratio / source_ratio - 1) < SAME_RATIO_TOLERANCE:
            raise UserError(f"the video already has the aspect ratio {ratio:.4g}: nothing to do")
        pads = target_pads(src_h, src_w, ratio)
    else:
        pads = check_pad(pad).in_pixels(src_h, src_w)
        if not any(p > 0 for p in pads):
            raise UserError("all pads are zero: nothing to outpaint")
    left, top, right, bottom = pads
    target_w, target_h = src_w + left + right, src_h + top + bottom
    known_w, known_h = src_w / target_w, src_h / target_h
    if min(known_w, known_h) < MIN_KNOWN_FRACTION - _EPS:
        raise UserError(
            f"the source would cover only {100 * min(known_w, known_h):.0f}% of the target's "
            f"{'width' if known_w < known_h else 'height'} (the model handles at least 25%); "
            "outpaint in two passes instead"
        )

    symmetric = math.isclose(left, right) and math.isclose(top, bottom)
    if canvas == "target":
        canvas_h, canvas_w, known, crop = _target_canvas(src_h, src_w, pads, size)
    else:
        canvas_h, canvas_w, known, crop = _square_canvas(src_h, src_w, pads, size, symmetric, official)

    if output == "official":
        output_mode = "official"
        out_w, out_h = crop.w - crop.w % 2 or crop.w, crop.h - crop.h % 2 or crop.h
        output_known = _clip(Rect(known.x0 - crop.x0, known.y0 - crop.y0, known.w, known.h), out_w, out_h)
    elif output_size is not None:
        output_mode = "size"
        out_w, out_h = _check_output_size(output_size, target_w / target_h)
        output_known = _place(pads, src_w, src_h, out_w / target_w, out_h / target_h, out_w, out_h)
    else:
        output_mode = "full"
        out_w, out_h, output_known = _full_resolution_output(src_h, src_w, pads)
    return Geometry(
        src_h=src_h,
        src_w=src_w,
        pads=(float(left), float(top), float(right), float(bottom)),
        canvas_mode=canvas,
        canvas_h=canvas_h,
        canvas_w=canvas_w,
        known=known,
        crop=crop,
        output_mode=output_mode,
        output_h=out_h,
        output_w=out_w,
        output_known=output_known,
        official=official,
    )


def _place(pads, src_w: float, src_h: float, sx: float, sy: float, width: int, height: int) -> Rect:
    """The source rectangle scaled by (sx, sy) from target coordinates, inside width x height.

    The size is rounded first (so it is the closest to the true scaled size), then the offset.
    """
    w, h = max(1, _round_half_up(src_w * sx)), max(1, _round_half_up(src_h * sy))
    x0, y0 = _round_half_up(pads[0] * sx), _round_half_up(pads[1] * sy)
    return _clip(Rect(min(x0, width - w), min(y0, height - h), w, h), width, height)


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def _clip(rect: Rect, width: int, height: int) -> Rect:
    x0, y0 = min(max(rect.x0, 0), width - 1), min(max(rect.y0, 0), height - 1)
    x1, y1 = min(max(rect.x1, x0 + 1), width), min(max(rect.y1, y0 + 1), height)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def _target_canvas(src_h: int, src_w: int, pads, size: int) -> tuple[int, int, Rect, Rect]:
    target_w, target_h = src_w + pads[0] + pads[2], src_h + pads[1] + pads[3]
    if target_w >= target_h:
        canvas_w, canvas_h = size, round_to_multiple(size * target_h / target_w)
    else:
        canvas_h, canvas_w = size, round_to_multiple(size * target_w / target_h)
    # each axis maps the target exactly onto the canvas (the rounding to 8 may stretch it by < 2%)
    known = _place(pads, src_w, src_h, canvas_w / target_w, canvas_h / target_h, canvas_w, canvas_h)
    return canvas_h, canvas_w, known, Rect(0, 0, canvas_w, canvas_h)


def _square_canvas(src_h: int, src_w: int, pads, size: int, symmetric: bool,
                   official: bool = False) -> tuple[int, int, Rect, Rect]:
    target_w, target_h = src_w + pads[0] + pads[2], src_h + pads[1] + pads[3]
    side = max(target_w, target_h)
    scale = size / side
    # the official: the frame resized to int(W * size / S) x int(H * size / S), pasted centred. Its float truncation
    # can lose a pixel where the exact value is whole (720 * 256 / 2275.56 = 80.99999...); ours guards it.
    eps = 0.0 if official else _EPS
    w, h = min(int(src_w * scale + eps), size), min(int(src_h * scale + eps), size)
    crop_w, crop_h = min(int(target_w * scale + _EPS), size), min(int(target_h * scale + _EPS), size)
    crop = Rect(int((size - crop_w) / 2), int((size - crop_h) / 2), crop_w, crop_h)
    if symmetric:
        known = Rect((size - w) // 2, (size - h) // 2, max(1, w), max(1, h))
    else:  # uneven pads (our extension): the source sits at its pad offsets inside the centred target
        known = Rect(crop.x0 + round(pads[0] * scale), crop.y0 + round(pads[1] * scale), max(1, w), max(1, h))
    return size, size, _clip(known, size, size), crop


def _full_resolution_output(src_h: int, src_w: int, pads) -> tuple[int, int, Rect]:
    """Output = target in source pixels with even sides; the source at integer offsets, unscaled."""
    left, top, right, bottom = pads
    x0, y0 = _round_half_up(left), _round_half_up(top)
    out_w = _even_at_least(src_w + left + right, src_w + x0)
    out_h = _even_at_least(src_h + top + bottom, src_h + y0)
    return out_w, out_h, Rect(x0, y0, src_w, src_h)


def _even_at_least(value: float, minimum: int) -> int:
    even = 2 * _round_half_up(value / 2)
    return max(even, minimum + minimum % 2)


def _check_output_size(output_size: tuple[int, int], target_ratio: float) -> tuple[int, int]:
    try:
        out_w, out_h = (int(v) for v in output_size)
    except (TypeError, ValueError):
        raise UserError(f"the output size must be two whole numbers W,H, got {output_size!r}") from None
    if out_w < 2 or out_h < 2 or out_w % 2 or out_h % 2:
        raise UserError(f"the output size must have even sides of at least 2 pixels, got {out_w}x{out_h}")
    if abs((out_w / out_h) / target_ratio - 1) > 0.02:
        raise UserError(
            f"the output size {out_w}x{out_h} does not have the target's aspect ratio {target_ratio:.4g}"
        )
    return out_w, out_h
