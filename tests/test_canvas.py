"""Tests of canvas building, the TELEA pre-fill and the composition back to output frames."""

import cv2
import numpy as np
import pytest

from m3ddm.canvas import (
    MIRROR_END,
    MIRROR_FADE,
    TEXTURE_LIMIT,
    TEXTURE_REACH,
    _borrowed,
    build_canvas,
    compose,
    prefill_smooth,
    prefill_telea,
)
from m3ddm.errors import UserError
from m3ddm.geometry import Pad, plan_geometry


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_build_canvas_letterboxes_the_source():
    g = plan_geometry(720, 1280, ratio=9 / 16)
    frame = noise(720, 1280)
    canvas, mask = build_canvas(frame, g)
    assert canvas.shape == (256, 144, 3) and canvas.dtype == np.uint8
    assert np.array_equal(mask, g.mask)
    assert canvas[mask == 1].max() == 0, "black outside the known rectangle"
    expected = cv2.resize(frame, (g.known.w, g.known.h), interpolation=cv2.INTER_AREA)  # shrinking: area
    assert np.array_equal(canvas[g.known.slices], expected)


def test_build_canvas_grows_small_sources_bilinearly():
    g = plan_geometry(40, 60, ratio=1.0)
    frame = noise(40, 60)
    canvas, _ = build_canvas(frame, g)
    expected = cv2.resize(frame, (g.known.w, g.known.h), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(canvas[g.known.slices], expected)


def test_build_canvas_checks_the_frame_shape():
    g = plan_geometry(720, 1280, ratio=9 / 16)
    with pytest.raises(ValueError):
        build_canvas(noise(100, 100), g)


@pytest.mark.parametrize(("fill", "drift"), [(prefill_telea, 12), (prefill_smooth, 1)])
def test_prefills_fill_only_the_border(fill, drift):
    """A flat source extends as the same flat colour into the border (TELEA drifts by a few levels)."""
    g = plan_geometry(120, 200, ratio=1.0)
    frame = np.full((120, 200, 3), (30, 120, 210), dtype=np.uint8)
    canvas, mask = build_canvas(frame, g)
    filled = fill(canvas, mask)
    assert np.array_equal(filled[mask == 0], canvas[mask == 0])
    assert np.abs(filled[mask == 1].astype(int) - np.array([30, 120, 210])).max() <= drift
    assert np.array_equal(fill(canvas, np.zeros_like(mask)), canvas)


def test_prefill_smooth_extends_the_edge_colours_without_streaks():
    """The smooth pre-fill carries each side's colours into the border beside it (a red left half, a blue right
    half), smoothly: no pixel-to-pixel streaks."""
    g = plan_geometry(120, 200, ratio=1.0)  # borders above and below
    frame = np.full((120, 200, 3), (30, 120, 210), dtype=np.uint8)
    halves = frame.copy()
    halves[:, :100] = (220, 20, 20)
    canvas, mask = build_canvas(halves, g)
    filled = prefill_smooth(canvas, mask).astype(int)
    top = filled[: g.known.y0 - 1]
    assert top[:, 5, 0].min() > 150 and top[:, -5, 2].min() > 150  # red above red, blue above blue
    rng = np.random.default_rng(0)
    textured = np.clip(halves + rng.normal(0, 25, halves.shape), 0, 255).astype(np.uint8)
    canvas, mask = build_canvas(textured, g)
    steps = lambda image: np.abs(np.diff(image[: g.known.y0 - 4].astype(int), axis=1)).mean()  # noqa: E731
    assert steps(prefill_smooth(canvas, mask)) < 0.5 * steps(prefill_telea(canvas, mask))


CASES = [
    dict(ratio=9 / 16), dict(ratio=9 / 16, canvas="square"), dict(ratio=1.0),
    dict(pad=Pad(0.1, 0.2, 0.3, 0.0, "fraction")), dict(ratio=2.39), dict(ratio=9 / 16, output="official"),
    dict(ratio=9 / 16, canvas="square", output="official"),
]


@pytest.mark.parametrize("src_h, src_w", [(243, 321), (240, 426), (321, 243), (64, 96)])
@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_compose_keeps_the_source_and_the_size(src_h, src_w, kwargs):
    g = plan_geometry(src_h, src_w, **kwargs)
    source = noise(src_h, src_w, seed=1)
    generated = noise(g.canvas_h, g.canvas_w, seed=2)
    out = compose(source, generated, g)
    assert out.shape == (g.output_h, g.output_w, 3) and out.dtype == np.uint8
    assert out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0
    known = out[g.output_known.slices]
    if g.output_mode == "full":
        assert (g.output_known.w, g.output_known.h) == (src_w, src_h)
        assert np.array_equal(known, source), "the source must come back bit for bit"
    else:  # official: the letterboxed canvas's known region, exactly
        letterboxed = build_canvas(source, g)[0]
        k, c = g.output_known, g.crop
        assert np.array_equal(known, letterboxed[c.y0 + k.y0 : c.y0 + k.y1, c.x0 + k.x0 : c.x0 + k.x1])


def test_compose_official_mode_is_the_plain_masked_composite():
    g = plan_geometry(720, 1280, ratio=9 / 16, canvas="square", output="official")
    source, generated = noise(720, 1280, 3), noise(256, 256, 4)
    letterboxed, mask = build_canvas(source, g)
    manual = np.where(mask[..., None] == 1, generated, letterboxed)[:, 56:200]
    assert np.array_equal(compose(source, generated, g, feather=0), manual)


def test_compose_output_size_option():
    g = plan_geometry(240, 320, ratio=16 / 9, output_size=(640, 360))
    out = compose(noise(240, 320), noise(g.canvas_h, g.canvas_w), g)
    assert out.shape == (360, 640, 3)


def test_seam_is_feathered_on_the_generated_side():
    g = plan_geometry(120, 160, pad=Pad(40, 0, 40, 0, "pixel"))
    source = np.full((120, 160, 3), 255, dtype=np.uint8)
    generated = np.zeros((g.canvas_h, g.canvas_w, 3), dtype=np.uint8)
    x0, row = g.output_known.x0, 60
    hard = compose(source, generated, g, feather=0)
    assert hard[row, x0 - 1, 0] == 0 and hard[row, x0, 0] == 255, "without feather: a step"
    upscale = g.output_known.w / g.known.w
    assert upscale <= 1.0  # here the feather is 4 output pixels (it scales with the upscale: next test)
    soft = compose(source, generated, g, feather=4, colour_match=False)
    left = soft[row, x0 - 6 : x0 + 1, 0].astype(int).tolist()
    assert left == [0, 0, 51, 102, 153, 204, 255], "a gradient 1 - d/5 outside the edge"
    right_edge = g.output_known.x1
    right = soft[row, right_edge - 1 : right_edge + 6, 0].astype(int).tolist()
    assert right == [255, 204, 153, 102, 51, 0, 0]
    assert np.array_equal(soft[g.output_known.slices], source)
    assert np.array_equal(soft[:, : x0 - 5], hard[:, : x0 - 5]), "nothing changes beyond the feather"


def test_feather_scales_with_the_upscale_from_canvas_to_output():
    g = plan_geometry(480, 640, pad=Pad(160, 0, 160, 0, "pixel"), size=240)
    upscale = g.output_known.w / g.known.w
    assert upscale > 3
    source = np.full((480, 640, 3), 255, dtype=np.uint8)
    generated = np.zeros((g.canvas_h, g.canvas_w, 3), dtype=np.uint8)
    out = compose(source, generated, g, feather=4, colour_match=False)
    x0, row = g.output_known.x0, 240
    band = round(4 * upscale)
    assert out[row, x0 - band // 2, 0] > 60, "still blending well past 4 output pixels"
    assert out[row, x0 - band - 2, 0] == 0, "the border beyond the band is the generated one"


def test_feather_carries_the_edge_colour_but_not_its_fine_detail_across_the_band():
    """Grass blades on the source's edge must not be stretched into streaks across an upscaled border: beyond about
    one canvas pixel (the upscale) the extended edge keeps only its low frequencies, while next to the edge it is
    the source itself (no step)."""
    g = plan_geometry(90, 160, pad=Pad(0, 45, 0, 45, "pixel"), size=48)
    upscale = g.output_known.w / g.known.w
    assert upscale > 3
    source = np.full((90, 160, 3), 128, dtype=np.uint8)
    source[:, ::2] = 200  # fine detail along the top and bottom edges: alternating columns
    generated = np.full((g.canvas_h, g.canvas_w, 3), 164, dtype=np.uint8)  # the blurred rendering: their mean
    out = compose(source, generated, g, feather=4, colour_match=False).astype(int)
    y0, band = g.output_known.y0, round(4 * upscale)
    columns = slice(g.output_known.x0 + 10, g.output_known.x1 - 10)

    def ripple(row: int) -> float:  # mean step between neighbouring columns
        return float(np.abs(np.diff(out[row, columns, 0])).mean())

    assert ripple(y0 - 1) > 0.6 * 72, "next to the edge the source's detail continues"
    assert ripple(y0 - round(2 * upscale)) < 8, "two canvas pixels out: no streaks"
    assert ripple(y0 - band // 2) < 2
    assert abs(out[y0 - band // 2, columns, 0].mean() - 164) < 3, "the edge's mean colour is carried"


def test_feather_mirrors_the_edge_texture_instead_of_stretching_it_into_streaks():
    """Within the first canvas pixel outside the edge the source's texture hands over to the border; it must be the
    source's texture mirrored, not the edge line repeated (which draws short streaks, one per grass blade)."""
    g = plan_geometry(90, 160, pad=Pad(0, 45, 0, 45, "pixel"), size=48)
    upscale = g.output_known.w / g.known.w
    assert upscale > 3
    source = np.random.default_rng(0).integers(60, 200, (90, 160, 3)).astype(np.uint8)  # texture everywhere
    generated = np.full((g.canvas_h, g.canvas_w, 3), 130, dtype=np.uint8)
    out = compose(source, generated, g, feather=4, colour_match=False).astype(float)
    y0, y1 = g.output_known.y0, g.output_known.y1
    columns = slice(g.output_known.x0 + 10, g.output_known.x1 - 10)

    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    # two rows a pixel and three pixels above the edge: a repeated edge line makes them the same texture
    assert abs(correlation(out[y0 - 1, columns], out[y0 - 3, columns])) < 0.3, "streaks above"
    assert abs(correlation(out[y1, columns], out[y1 + 2, columns])) < 0.3, "streaks below"
    assert correlation(out[y0 - 3, columns], source[2, columns]) > 0.8, "the mirror image of the source"
    assert correlation(out[y1 + 2, columns], source[-3, columns]) > 0.8


def test_texture_lends_the_pictures_grain_to_the_band_next_to_it():
    """A flat upscaled border beside a textured picture: --texture puts grain in the band next to the picture (the
    strip beside the edge, moved outwards: rows from the picture's top strip above it), none right at the edge (the
    strip's far end does not continue it) nor beyond its reach; 0 changes nothing."""
    g = plan_geometry(90, 160, pad=Pad(0, 90, 0, 90, "pixel"), size=96)
    upscale = g.output_known.w / g.known.w  # about 2.9: a band of 11 pixels, a reach of 33, a border of 90
    source = np.random.default_rng(0).integers(100, 156, (90, 160, 3)).astype(np.uint8)
    generated = np.full((g.canvas_h, g.canvas_w, 3), 128, dtype=np.uint8)
    plain = compose(source, generated, g, feather=4, colour_match=False).astype(float)
    assert np.array_equal(plain, compose(source, generated, g, feather=4, colour_match=False, texture=0.0))
    lent = compose(source, generated, g, feather=4, colour_match=False, texture=1.0).astype(float)
    y0, columns = g.output_known.y0, slice(g.output_known.x0, g.output_known.x1)
    band = round(4 * upscale)
    reach = TEXTURE_REACH * band
    added = lent - plain
    assert np.array_equal(lent[g.output_known.slices], source), "the picture is untouched"
    assert np.abs(added[y0 - 1, columns]).mean() < 1.5, "nothing lent right at the edge"
    middle = y0 - (band + reach) // 2  # where the weight is largest
    assert 3 < np.abs(added[middle, columns]).mean() <= TEXTURE_LIMIT + 1, "grain, squashed"
    assert np.abs(added[: max(0, y0 - reach)]).max() == 0, "nothing beyond the reach"
    # the grain is the picture's own: the row `middle` borrows the picture's row (middle - y0) mod reach-strip
    strip = min(reach, g.output_known.h, y0)
    row = (middle - y0) % strip
    detail = source[row, :, 0].astype(float) - cv2.GaussianBlur(source.astype(np.float32), (0, 0), 2.0)[row, :, 0]
    assert np.corrcoef(added[middle, columns, 0], detail)[0, 1] > 0.8


def test_texture_lends_grain_not_the_shape_of_an_objects_edge():
    """A cup's rim beside the border must not come back as a faint arc: along an object's edge (a steep slope once
    the grain is blurred away) the lent detail is weak; in the grain beside it, it is not."""
    g = plan_geometry(90, 160, pad=Pad(0, 90, 0, 90, "pixel"), size=96)
    rng = np.random.default_rng(1)
    source = rng.integers(-20, 21, (90, 160, 3)) + np.where(np.arange(160) < 80, 60, 190)[None, :, None]
    source = source.clip(0, 255).astype(np.uint8)  # grain on both sides of a vertical edge at column 80
    generated = np.full((g.canvas_h, g.canvas_w, 3), 128, dtype=np.uint8)
    plain = compose(source, generated, g, feather=4, colour_match=False).astype(float)
    added = np.abs(compose(source, generated, g, feather=4, colour_match=False, texture=1.0) - plain)
    band = added[: g.output_known.y0].mean(axis=(0, 2))  # per column, above the picture
    x0 = g.output_known.x0
    at_edge, in_grain = band[x0 + 77: x0 + 83].mean(), band[x0 + 20: x0 + 60].mean()
    assert at_edge < 0.4 * in_grain, (at_edge, in_grain)


def test_the_lent_grain_is_moved_not_mirrored():
    """Each side borrows the strip next to it moved outwards (a translation keeps the direction in which the
    picture moves; a mirror would reverse it), repeated beyond the strip."""
    # axis of 12: 3 before the picture, picture [3, 8), 4 after; strips at most 3 wide here
    assert _borrowed(12, 3, 8, reach=3).tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 2, 3, 4, 2]
    assert _borrowed(14, 6, 9, reach=10).tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]  # picture narrower
    assert _borrowed(5, 0, 5, reach=3).tolist() == [0, 1, 2, 3, 4]  # no border


def test_the_mirror_at_the_seam_ends_soon_at_a_large_upscale():
    """At an 11x upscale the feather mirrors the picture across the edge as strongly as before next to it, but not
    for 11 pixels: beyond MIRROR_END nothing of the mirror image is left (a long mirror turns every spot on the edge
    into a symmetric shape, a row of rings along the seam)."""
    g = plan_geometry(180, 320, pad=Pad(0, 180, 0, 180, "pixel"), size=48)
    upscale = g.output_known.w / g.known.w
    assert upscale >= MIRROR_END + 2
    source = np.random.default_rng(0).integers(60, 200, (180, 320, 3)).astype(np.uint8)
    generated = np.full((g.canvas_h, g.canvas_w, 3), 130, dtype=np.uint8)
    out = compose(source, generated, g, feather=4, colour_match=False).astype(float)
    y0, columns = g.output_known.y0, slice(g.output_known.x0 + 20, g.output_known.x1 - 20)

    def mirrored(distance: int) -> float:  # how much the row `distance` above the edge copies its mirror image
        return float(np.corrcoef(out[y0 - distance, columns].ravel(), source[distance - 1, columns].ravel())[0, 1])

    assert all(mirrored(d) > 0.9 for d in range(1, int(MIRROR_FADE) + 1))
    beyond = range(int(MIRROR_END), int(upscale))
    assert all(abs(mirrored(d)) < 0.1 for d in beyond), [round(mirrored(d), 2) for d in range(1, int(upscale))]


def test_colour_match_continues_the_source_across_the_seam():
    """The decoded canvas renders the known region shifted in colour (a codec's drift); the border carries the same
    shift. Colour matching removes the step at the seam, leaves the source untouched and the far border as
    generated."""
    from m3ddm.evaluation.metrics import seam_steps

    g = plan_geometry(240, 320, pad=Pad(0, 60, 0, 60, "pixel"))
    yy, xx = np.mgrid[0 : g.output_h, 0 : g.output_w].astype(np.float32)
    world = np.stack([120 + 40 * np.sin(xx / 23), 100 + 30 * np.cos(yy / 17), 90 + 20 * np.sin((xx + yy) / 29)], -1)
    k = g.output_known
    source = world[k.slices].clip(0, 255).astype(np.uint8)
    shift = np.array([25.0, -20.0, 15.0])
    generated = cv2.resize((world + shift).clip(0, 255).astype(np.uint8), (g.canvas_w, g.canvas_h),
                           interpolation=cv2.INTER_AREA)
    pads = (k.x0, k.y0, g.output_w - k.x1, g.output_h - k.y1)
    plain = compose(source, generated, g, feather=4, colour_match=False)
    matched = compose(source, generated, g, feather=4)
    (seam_plain, inside), (seam_matched, _) = seam_steps(plain, pads), seam_steps(matched, pads)
    assert seam_plain > 3 * inside, "without matching the shift shows as a step"
    assert seam_matched < 1.5 * inside, (seam_matched, inside)
    assert np.array_equal(matched[k.slices], source)
    assert np.array_equal(matched[0], plain[0]) and np.array_equal(matched[-1], plain[-1]), "frame edge as generated"


@pytest.mark.parametrize("canvas", ["target", "square"])
def test_generated_border_is_aligned_with_the_source(canvas):
    """A perfect model continues the letterboxed source into the border: compose must give back the world."""
    h, w, pad = 600, 720, 180  # the canvas is upscaled about 4.2x: misplacing it by half a pixel shows
    yy, xx = np.mgrid[0:h, 0 : w + 2 * pad].astype(np.float32)
    waves = [127 + 100 * np.sin(xx / 9), 127 + 100 * np.cos(yy / 11), 127 + 60 * np.sin((xx + yy) / 13)]
    world = np.stack(waves, axis=-1).clip(0, 255).astype(np.uint8)
    source = world[:, pad : pad + w]
    g = plan_geometry(h, w, pad=Pad(pad, 0, pad, 0, "pixel"), size=256, canvas=canvas)
    k, c = g.known, g.crop
    assert (k.y0, k.h) == (c.y0, c.h)
    generated, _ = build_canvas(source, g)  # each part of the world resized into its part of the canvas
    rows, area = slice(c.y0, c.y1), cv2.INTER_AREA
    generated[rows, c.x0 : k.x0] = cv2.resize(world[:, :pad], (k.x0 - c.x0, k.h), interpolation=area)
    generated[rows, k.x1 : c.x1] = cv2.resize(world[:, pad + w :], (c.x1 - k.x1, k.h), interpolation=area)
    out = compose(source, generated, g, feather=0)
    assert out.shape == world.shape
    error = np.abs(out.astype(int) - world.astype(int))
    assert error[:, :pad].mean() < 2.5 and error[:, pad + w :].mean() < 2.5
    seams = [error[:, pad - 3 : pad].mean(), error[:, pad + w : pad + w + 3].mean()]
    assert max(seams) < 2.5, "the border meets the source where it should"


def test_target_canvas_has_fewer_pixels_than_square_for_the_same_detail():
    square = plan_geometry(720, 1280, ratio=9 / 16, canvas="square")
    target = plan_geometry(720, 1280, ratio=9 / 16, canvas="target")
    sq_canvas, sq_mask = build_canvas(noise(720, 1280), square)
    tg_canvas, tg_mask = build_canvas(noise(720, 1280), target)
    assert sq_canvas.shape[:2] == (256, 256) and tg_canvas.shape[:2] == (256, 144)
    assert tg_canvas.shape[0] * tg_canvas.shape[1] / (sq_canvas.shape[0] * sq_canvas.shape[1]) == 0.5625
    # the same known area (144 x 81), so the square canvas's extra pixels are all border, cropped away later
    assert (sq_mask == 0).sum() == (tg_mask == 0).sum() == 144 * 81
    assert sq_mask.sum() - tg_mask.sum() == 256 * 256 - 256 * 144


def test_random_geometries_never_crash():
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(60):
        h, w = int(rng.integers(1, 160)), int(rng.integers(1, 160))
        kwargs = dict(
            canvas=str(rng.choice(["target", "square"])),
            output=str(rng.choice(["full", "official"])),
            size=int(rng.integers(1, 130)),
        )
        if rng.random() < 0.5:
            kwargs["ratio"] = float(rng.uniform(0.3, 3.0))
        else:
            pads = tuple(float(p) for p in rng.uniform(0.01, 0.6, 4) * (rng.random(4) < 0.7))
            kwargs["pad"] = Pad(*(pads if any(pads) else (0.2, 0.0, 0.0, 0.0)), unit="fraction")
        try:
            g = plan_geometry(h, w, **kwargs)
        except UserError as exc:  # only the documented refusals
            assert "nothing to do" in str(exc) or "two passes" in str(exc)
            continue
        source = noise(h, w, seed=checked)
        canvas, mask = build_canvas(source, g)
        out = compose(source, prefill_telea(canvas, mask), g, feather=int(rng.integers(0, 6)))
        assert out.shape == (g.output_h, g.output_w, 3)
        if g.output_mode == "full":
            assert np.array_equal(out[g.output_known.slices], source)
        checked += 1
    assert checked > 30
