"""User strings -> typed values: the one place where targets, pads, strides, times and sizes are read.

The CLI, the web app and the ComfyUI node parse here; everything inward (geometry, planning, the pipeline and
the jobs) takes the typed values (a float ratio, a ``Pad``, a stride tuple) and only checks them.
"""

from __future__ import annotations

import argparse
import math
import re
from fractions import Fraction

from m3ddm.errors import UserError
from m3ddm.geometry import Pad, TargetRatio, check_pad
from m3ddm.planning import validate_strides

_RATIO_SEPARATOR = re.compile(r"\s*[:/x]\s*")


def parse_ratio(text: str) -> float:
    """``"9:16"``, ``"16:9"``, ``"2.39:1"``, ``"9/16"``, ``"9x16"`` or ``"0.5625"`` -> width / height."""
    text = str(text).strip()
    try:
        numbers = [float(p) for p in _RATIO_SEPARATOR.split(text)]
    except ValueError:
        raise UserError(f"cannot read the aspect ratio {text!r}; use a form like 9:16, 16:9 or 0.5625") from None
    if len(numbers) not in (1, 2) or not all(math.isfinite(x) and x > 0 for x in numbers):
        raise UserError(f"the aspect ratio must be positive, like 9:16 or 0.5625, got {text!r}")
    return numbers[0] / numbers[1] if len(numbers) == 2 else numbers[0]


def parse_target_ratios(text: str) -> tuple[TargetRatio, ...]:
    """``"9:16,1:1"`` -> one target per ratio, labelled as written (``9-16``) for the output names."""
    return tuple(TargetRatio(_RATIO_SEPARATOR.sub("-", part.strip()), parse_ratio(part)) for part in text.split(","))


def _four_sides(text: str, what: str, example: str) -> tuple[tuple[float, float, float, float], str]:
    """``"L,T,R,B"`` -> the four numbers and their unit: "pixel" when any is >= 1 (then all whole), else
    "fraction". Zero fits both; mixing the two is an error."""
    try:
        values = tuple(float(p.strip()) for p in str(text).split(","))
    except ValueError:
        raise UserError(f"cannot read the {what} {text!r}; use four numbers LEFT,TOP,RIGHT,BOTTOM {example}") from None
    if len(values) != 4:
        raise UserError(f"the {what} needs four numbers LEFT,TOP,RIGHT,BOTTOM, got {len(values)} in {text!r}")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise UserError(f"the {what} must be zero or positive, got {text!r}")
    if any(v >= 1 for v in values) and any(0 < v < 1 for v in values):
        raise UserError(f"the {what} {text!r} mixes fractions (< 1) and pixels (>= 1); use one kind, {example}")
    if any(v >= 1 for v in values):
        if any(v != int(v) for v in values):
            raise UserError(f"pixel values must be whole numbers, got {text!r}; use four numbers {example}")
        return values, "pixel"  # type: ignore[return-value]
    return values, "fraction"  # type: ignore[return-value]


def parse_pad(text: str) -> Pad:
    """``m3ddm outpaint --pad "L,T,R,B"``: the border to add, as fractions of the *source* width (L, R) / height
    (T, B), all < 1, or as whole pixels."""
    values, unit = _four_sides(text, "pads", "such as 0.25,0,0.25,0 (fractions) or 40,0,40,0 (pixels)")
    return check_pad(Pad(*(int(v) for v in values), unit=unit) if unit == "pixel" else Pad(*values, unit=unit))


def parse_strides(text: str) -> tuple[int, ...]:
    """``"15,5,1"`` -> a validated stride tuple."""
    try:
        strides = tuple(int(p.strip()) for p in str(text).split(","))
    except ValueError:
        message = f"strides must be whole numbers separated by commas, e.g. 15,5,1, got {text!r}"
        raise UserError(message) from None
    return validate_strides(strides)


def parse_seconds(text: str) -> Fraction:
    """A time: plain seconds ("90", "1.5") or [H:]MM:SS(.ss); exact, so frame edges do not move by rounding.

    An argparse ``type``: a bad value is argparse's one-line usage error.
    """
    match = re.fullmatch(r"\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?|\.\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected seconds or [H:]MM:SS, got {text!r}")
    first, second, secs = match.groups()
    hours, minutes = (first, second) if second is not None else (None, first)
    return Fraction(secs) + 60 * int(minutes or 0) + 3600 * int(hours or 0)


_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(text: str, name: str = "--output-size", *, minimum: int = 1, even: bool = False) -> tuple[int, int]:
    """``"720x1280"`` -> (width, height); ``even``: both sides even (an H.264 yuv420p clip to be written)."""
    match = _SIZE.fullmatch(str(text))
    if not match or min(int(match.group(1)), int(match.group(2))) < minimum:
        raise UserError(f"{name} must look like WIDTHxHEIGHT (such as 720x1280) with sides of at least {minimum} "
                        f"pixels, got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if even and (width % 2 or height % 2):
        raise UserError(f"{name}: the clip is H.264 (yuv420p), so both sides must be even, got {text!r}")
    return width, height  # an output size is checked against the target by the geometry


def parse_int_list(text: str, name: str) -> list[int]:
    """``"100, 1000"`` -> [100, 1000]: positive whole numbers separated by commas."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{name} must be whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"{name} must be positive whole numbers separated by commas, got {text!r}")
    return values


def parse_border(text: str) -> tuple[float, float, float, float]:
    """``m3ddm score --border "L,T,R,B"``: the generated border of a finished video, as fractions of the *output*
    frame (L, R of its width, T, B of its height), or as whole pixels (returned as floats >= 1, which
    ``m3ddm.evaluation.protocol.border_to_px`` keeps as they are)."""
    return _four_sides(text, "border", "such as 0.125,0,0.125,0 (fractions) or 40,0,40,0 (pixels)")[0]
