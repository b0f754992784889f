"""Tests of the geometry: target frame, working canvas, masks, crop and output size."""

import math

import numpy as np
import pytest

from m3ddm.commands.arguments import parse_ratio
from m3ddm.errors import UserError
from m3ddm.geometry import Pad, TargetRatio, bounding_pads, latent_mask, plan_geometry


@pytest.mark.parametrize("src_h, src_w", [(720, 1280), (1280, 720), (243, 321), (480, 480), (1080, 1920)])
@pytest.mark.parametrize("ratio", ["9:16", "16:9", "1:1", "2.39:1", "4:3", "3:4"])
def test_target_frame_has_the_ratio_and_grows_one_axis(src_h, src_w, ratio):
    r = parse_ratio(ratio)
    if abs(r / (src_w / src_h) - 1) < 0.01:
        with pytest.raises(UserError, match="nothing to do"):
            plan_geometry(src_h, src_w, ratio=r)
        return
    try:
        g = plan_geometry(src_h, src_w, ratio=r)
    except UserError as exc:  # only the "too little known" case may refuse
        assert "two passes" in str(exc)
        assert min(src_w * 1.0 / max(src_w, r * src_h), src_h / max(src_h, src_w / r)) < 0.25
        return
    left, top, right, bottom = g.pads
    assert (src_w + left + right) / (src_h + top + bottom) == pytest.approx(r)
    assert (left == right == 0) != (top == bottom == 0), "exactly one axis grows"
    assert left == pytest.approx(right) and top == pytest.approx(bottom), "source centred"
    assert g.ratio == pytest.approx(r)


@pytest.mark.parametrize(
    "size, long_side", [(256, 256), (250, 248), (3, 8), (512, 512), (300, 304), (252, 256), (1000, 1000)]
)
def test_target_canvas_sides(size, long_side):
    g = plan_geometry(720, 1280, ratio=9 / 16, size=size)
    assert g.canvas_h == long_side and g.canvas_w % 8 == 0 and g.canvas_w >= 8
    assert abs(g.canvas_w / g.canvas_h - 9 / 16) <= 4 / g.canvas_h + 1e-9  # within half a step of 8 pixels
    assert (g.crop.x0, g.crop.y0, g.crop.w, g.crop.h) == (0, 0, g.canvas_w, g.canvas_h)


def test_square_canvas_matches_the_official_numbers():
    # 1280x720 (16:9) to 9:16, official: bounding side S = 1280 / (9/16); frame resized to int(256*W/S) x
    # int(256*H/S) = 144 x 81, pasted at ((256-144)//2, (256-81)//2); final crop width int(256*9/16) = 144.
    g = plan_geometry(720, 1280, ratio=9 / 16, canvas="square")
    assert (g.canvas_h, g.canvas_w) == (256, 256)
    assert (g.known.x0, g.known.y0, g.known.w, g.known.h) == (56, 87, 144, 81)
    assert (g.crop.x0, g.crop.y0, g.crop.w, g.crop.h) == (56, 0, 144, 256)
    portrait = plan_geometry(1280, 720, ratio=16 / 9, canvas="square")
    assert (portrait.known.x0, portrait.known.y0, portrait.known.w, portrait.known.h) == (87, 56, 81, 144)
    assert (portrait.crop.x0, portrait.crop.y0, portrait.crop.w, portrait.crop.h) == (0, 56, 256, 144)


def test_target_canvas_saves_pixels_against_square():
    square = plan_geometry(720, 1280, ratio=9 / 16, canvas="square")
    target = plan_geometry(720, 1280, ratio=9 / 16, canvas="target")
    assert (target.canvas_h, target.canvas_w) == (256, 144)
    saving = 1 - (target.canvas_h * target.canvas_w) / (square.canvas_h * square.canvas_w)
    assert saving == pytest.approx(0.4375)  # 144*256 vs 256*256
    # both hold the source at about the same resolution
    assert abs(target.known.w - square.known.w) <= 1 and abs(target.known.h - square.known.h) <= 1


def test_masks():
    g = plan_geometry(720, 1280, pad=Pad(0.25, 0.0, 0.25, 0.0, "fraction"))  # canvas 256 x 96, known x 43..213
    mask = g.mask
    assert mask.shape == (g.canvas_h, g.canvas_w) and mask.dtype == np.uint8
    assert mask[g.known.slices].sum() == 0
    assert mask.sum() == g.canvas_h * g.canvas_w - g.known.w * g.known.h
    lat = latent_mask(g.mask)
    assert lat.shape == (g.canvas_h // 8, g.canvas_w // 8)
    assert np.array_equal(lat, mask[::8, ::8])
    # nearest sampling at 8*i: a column is known iff pixel 8*i is known
    x0, x1 = g.known.x0, g.known.x1
    expected_cols = [0 if x0 <= 8 * i < x1 else 1 for i in range(lat.shape[1])]
    assert lat[0].tolist() == expected_cols
    assert latent_mask(np.ones((17, 9)), 8).shape == (2, 1)


def test_full_resolution_output_keeps_the_source_unscaled():
    g = plan_geometry(720, 1280, ratio=9 / 16)
    assert (g.output_w, g.output_h) == (1280, 2276)  # 1280 * 16 / 9 = 2275.6, rounded to even
    assert (g.output_known.w, g.output_known.h) == (1280, 720)
    assert g.output_known.y0 == 778 and g.output_known.x0 == 0
    assert g.output_mask.sum() == 1280 * 2276 - 1280 * 720
    pads = plan_geometry(720, 1280, pad=Pad(101, 10, 0, 0, "pixel"))
    assert (pads.output_w, pads.output_h) == (1382, 730) and pads.output_known.x0 == 101


@pytest.mark.parametrize("src_h, src_w", [(243, 321), (241, 319), (100, 101), (1, 3), (37, 1000), (999, 333)])
@pytest.mark.parametrize("ratio", ["9:16", "16:9", "1:1", "2.39:1"])
@pytest.mark.parametrize("canvas", ["target", "square"])
def test_odd_sizes_never_crash(src_h, src_w, ratio, canvas):
    try:
        g = plan_geometry(src_h, src_w, ratio=parse_ratio(ratio), canvas=canvas, size=250)
    except UserError as exc:
        assert "nothing to do" in str(exc) or "two passes" in str(exc)
        return
    assert g.canvas_h % 8 == 0 and g.canvas_w % 8 == 0 and max(g.canvas_h, g.canvas_w) == 248
    k = g.known
    assert 0 <= k.x0 and k.x1 <= g.canvas_w and 0 <= k.y0 and k.y1 <= g.canvas_h and k.w >= 1 and k.h >= 1
    c = g.crop
    assert c.x0 <= k.x0 + 1 and k.x1 <= c.x1 + 1 and c.y0 <= k.y0 + 1 and k.y1 <= c.y1 + 1
    assert g.output_w % 2 == 0 and g.output_h % 2 == 0
    o = g.output_known
    assert (o.w, o.h) == (src_w, src_h) and o.x1 <= g.output_w and o.y1 <= g.output_h
    r = parse_ratio(ratio)
    assert abs(g.output_w / g.output_h - r) / r < 0.05 + 2 / min(src_h, src_w)
    official = plan_geometry(src_h, src_w, ratio=r, canvas=canvas, output="official")
    assert official.output_w % 2 == 0 and official.output_h % 2 == 0
    assert official.output_w <= official.crop.w and official.output_h <= official.crop.h


def test_output_size_option_and_official_mode():
    g = plan_geometry(720, 960, ratio=16 / 9, output_size=(640, 360))
    assert (g.output_mode, g.output_w, g.output_h) == ("size", 640, 360)
    assert (g.output_known.x0, g.output_known.w, g.output_known.h) == (80, 480, 360)
    official = plan_geometry(720, 1280, ratio=9 / 16, canvas="square", output="official")
    assert (official.output_w, official.output_h) == (144, 256)
    assert (official.output_known.x0, official.output_known.y0) == (0, 87)
    for bad in [(641, 360), (0, 0), (1000, 360), ("a", 2)]:
        with pytest.raises(UserError):
            plan_geometry(720, 960, ratio=16 / 9, output_size=bad)
    with pytest.raises(UserError):
        plan_geometry(720, 960, ratio=16 / 9, output="official", output_size=(640, 360))


def test_validation_errors():
    with pytest.raises(UserError, match="nothing to do"):
        plan_geometry(720, 1280, ratio=16 / 9)
    with pytest.raises(UserError, match="nothing to do"):
        plan_geometry(720, 1280, ratio=1.77)  # within 1% of 16:9
    with pytest.raises(UserError, match="two passes"):
        plan_geometry(720, 1280, ratio=1 / 4)  # the source would be 14% of the height
    with pytest.raises(UserError, match="two passes"):
        plan_geometry(100, 100, pad=Pad(200, 0, 200, 0, "pixel"))
    plan_geometry(100, 100, pad=Pad(150, 0, 150, 0, "pixel"))  # exactly 25% is allowed
    with pytest.raises(UserError):
        plan_geometry(720, 1280)
    with pytest.raises(UserError):
        plan_geometry(720, 1280, ratio=9 / 16, pad=Pad(0.1, 0.0, 0.1, 0.0, "fraction"))
    nonsense = [
        dict(ratio=0.0), dict(ratio=-1 / 2), dict(ratio="wide"), dict(pad=Pad(0, 0, 0, 0, "pixel")),
        dict(ratio=9 / 16, size=0), dict(ratio=9 / 16, canvas="round"), dict(ratio=9 / 16, output="best"),
    ]
    for kwargs in nonsense:
        with pytest.raises(UserError):
            plan_geometry(720, 1280, **kwargs)
    with pytest.raises(UserError):
        plan_geometry(0, 1280, ratio=9 / 16)


def test_pads_in_source_pixels_and_canvas_placement():
    g = plan_geometry(720, 1280, pad=Pad(0.25, 0.0, 0.25, 0.0, "fraction"))
    assert g.pads == (320.0, 0.0, 320.0, 0.0)
    assert (g.canvas_w, g.canvas_h) == (256, 96)  # 1920 x 720 -> 256 x 96
    assert g.known.w == math.floor(1280 * 256 / 1920 + 0.5) and g.known.h == 96
    assert g.known.x0 == round(320 * 256 / 1920)


def test_official_rounding_truncates_like_the_driver():
    """1280x720 -> 9:16 on the 256 square: the driver's float truncation pastes 144x80 at y = 88 (720 * 256 / 2275.56
    is 80.99999... in floats); ours guards the truncation and pastes 144x81 at y = 87."""
    official = plan_geometry(720, 1280, ratio=9 / 16, size=256, canvas="square", official=True)
    ours = plan_geometry(720, 1280, ratio=9 / 16, size=256, canvas="square")
    assert (official.known.w, official.known.h, official.known.x0, official.known.y0) == (144, 80, 56, 88)
    assert (ours.known.w, ours.known.h, ours.known.y0) == (144, 81, 87)
    assert official.official and not ours.official
    with pytest.raises(UserError, match="square canvas"):
        plan_geometry(720, 1280, ratio=9 / 16, size=256, official=True)


def test_inner_code_takes_typed_targets_only():
    # user text is read in m3ddm.commands.arguments; a string reaching the geometry is a programming mistake
    with pytest.raises(UserError, match="positive number"):
        plan_geometry(720, 1280, ratio="9:16")
    with pytest.raises(UserError, match="Pad"):
        plan_geometry(720, 1280, pad="16,0,16,0")
    with pytest.raises(UserError, match="below 1"):
        plan_geometry(720, 1280, pad=Pad(0.5, 0, 1.5, 0, "fraction"))


def test_bounding_pads_hold_every_target():
    left, top, right, bottom = bounding_pads(720, 1280, (TargetRatio("9-16", 9 / 16), TargetRatio("1-1", 1.0)))
    assert (left, right) == (0.0, 0.0) and top == bottom == pytest.approx((1280 * 16 / 9 - 720) / 2)
    with pytest.raises(UserError, match="repeat"):
        bounding_pads(720, 1280, (TargetRatio("9-16", 9 / 16), TargetRatio("0.5625", 0.5625)))
    with pytest.raises(UserError, match="already"):
        bounding_pads(720, 1280, (TargetRatio("9-16", 9 / 16), TargetRatio("16-9", 16 / 9)))
