"""Global motion and propagation of other frames' pixels into the border (``m3ddm.propagation``)."""

from __future__ import annotations

import numpy as np
import pytest

from m3ddm.canvas import prefill_telea
from m3ddm.propagation import chain_to_first, estimate_motion, motion_frame, propagate_border, rescale_motion


def test_global_motion_of_a_pan_is_a_translation(pan_video) -> None:
    motion = estimate_motion(pan_video[0], pan_video[1])
    # The camera moves 3 px right, so content moves 3 px left.
    assert motion[0, 2] == pytest.approx(-3.0, abs=0.5) and motion[1, 2] == pytest.approx(0.0, abs=0.5)
    assert np.allclose(motion[:2, :2], np.eye(2), atol=0.02)
    to_first, segments = chain_to_first([motion, motion])
    assert to_first[2][0, 2] == pytest.approx(6.0, abs=1.0) and segments == [0, 0, 0]
    # A cut (no reliable motion) starts a new shot.
    rng = np.random.default_rng(0)
    assert estimate_motion(pan_video[0], rng.integers(0, 256, pan_video[0].shape, dtype=np.uint8)) is None
    assert chain_to_first([motion, None, motion])[1] == [0, 0, 1, 1]


def test_a_still_camera_stays_still_while_a_large_object_crosses() -> None:
    """A still, textured scene with a textured object half the frame wide sliding 8 pixels a frame across it: the
    camera's motion is the scene's (none), not the object's; a pan of the same scene is still measured."""
    import cv2

    from m3ddm.propagation import estimate_motion

    rng = np.random.default_rng(3)
    def texture(h, w):  # noqa: E306
        return cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 1.5)
    scene, thing = texture(180, 400), texture(120, 170)
    frames = []
    for t in range(4):
        frame = scene[:, 40:360].copy()
        frame[30:150, 20 + 8 * t : 190 + 8 * t] = thing
        frames.append(np.clip(frame + rng.normal(0, 1.5, frame.shape), 0, 255).astype(np.uint8))
    for a, b in zip(frames, frames[1:], strict=False):
        motion = estimate_motion(a, b)
        assert motion is not None and np.abs(motion - np.eye(3)).max() < 1e-6
    panned = [np.clip(scene[:, 40 + 5 * t : 360 + 5 * t], 0, 255).astype(np.uint8) for t in range(2)]
    motion = estimate_motion(*panned)
    assert motion[0, 2] == pytest.approx(-5.0, abs=0.5)


def test_motion_measured_small_is_rescaled_to_the_frames_pixels(pan_video) -> None:
    small = motion_frame(pan_video[0], limit=48)
    assert small.shape == (48, 48) and small.dtype == np.uint8
    # a shift of (1.5, -0.5) and a 2 % zoom measured at half size: twice the shift, the same zoom, at full size
    measured = np.array([[1.02, 0.0, 1.5], [0.0, 1.02, -0.5], [0.0, 0.0, 1.0]])
    full = rescale_motion(measured, 2.0, 2.0)
    assert np.allclose(full, [[1.02, 0.0, 3.0], [0.0, 1.02, -1.0], [0.0, 0.0, 1.0]])
    point = np.array([10.0, 20.0, 1.0])  # the same scene point, either way round
    assert np.allclose(full @ point, 2 * (measured @ (point / [2, 2, 1])) * [1, 1, 0.5])
    assert rescale_motion(None, 2.0, 2.0) is None


def test_a_static_camera_borrows_nothing_and_gets_telea(pan_video) -> None:
    frames = np.repeat(pan_video[:1], 5, axis=0)
    pads = (10, 0, 10, 0)
    out = propagate_border(frames, pads)
    canvas = np.zeros((96, 116, 3), np.uint8)
    canvas[:, 10:106] = frames[0]
    hole = np.ones((96, 116), np.uint8)
    hole[:, 10:106] = 0
    assert np.array_equal(out[3], prefill_telea(canvas, hole))


def test_given_motions_are_used_and_cuts_stop_propagation(pan_video) -> None:
    pads = (12, 0, 12, 0)
    known = pan_video[:6, :, 12:-12]
    measured = propagate_border(known, pads)
    motions = [estimate_motion(known[t], known[t + 1]) for t in range(5)]
    assert np.array_equal(propagate_border(known, pads, motions), measured)
    # every pair a cut: no frame lends pixels, so every border is TELEA's
    alone = propagate_border(known, pads, [None] * 5)
    assert np.array_equal(alone[2], propagate_border(known[2:3], pads)[0])
    assert not np.array_equal(alone[2], measured[2])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(1e-9, ((a.astype(float) - b.astype(float)) ** 2).mean())))


def test_keep_seen_pastes_what_other_frames_saw_and_keeps_the_rest(pan_video) -> None:
    from m3ddm.geometry import Rect
    from m3ddm.propagation import keep_seen

    known = Rect(12, 0, 72, 96)  # the source's place in a 96x96 output
    sources = np.ascontiguousarray(pan_video[:, :, 12:84])
    grey = np.full_like(pan_video, 128)  # a "model" border that is flat grey
    grey[:, known.slices[0], known.slices[1]] = sources
    out = np.stack(list(keep_seen(zip(sources, grey, strict=True), known, reach=8)))
    assert out.shape == pan_video.shape
    assert np.array_equal(out[:, :, 12:84], sources)  # the picture is the source
    # a right pan: the left border of later frames was seen earlier (sharp, at the output's size), the right border
    # of early frames is seen later; the first frame's left border was never seen and stays the model's
    assert _psnr(out[8:, :, 2:12], pan_video[8:, :, 2:12]) > 30 > _psnr(grey[8:, :, 2:12], pan_video[8:, :, 2:12])
    assert _psnr(out[:8, :, 86:94], pan_video[:8, :, 86:94]) > 30
    assert np.array_equal(out[0, :, :8], grey[0, :, :8])
    # a static camera: nothing to borrow, the output is unchanged
    still = np.repeat(grey[:1], 5, axis=0)
    stills = np.repeat(sources[:1], 5, axis=0)
    assert np.array_equal(np.stack(list(keep_seen(zip(stills, still, strict=True), known, reach=2))), still)


def test_keep_seen_pastes_only_what_two_frames_agree_on(pan_video) -> None:
    """Texture that changes on its own near the left edge (water, an animated scene) is not pasted into the left
    border, though the camera's motion is found from the rest; the right border, fed by steady texture, is."""
    from m3ddm.geometry import Rect
    from m3ddm.propagation import keep_seen

    known = Rect(12, 0, 72, 96)
    sources = np.ascontiguousarray(pan_video[:, :, 12:84]).copy()
    rng = np.random.default_rng(1)
    sources[:, :, :12] = rng.integers(0, 256, sources[:, :, :12].shape, dtype=np.uint8)  # new noise every frame
    grey = np.full_like(pan_video, 128)
    grey[:, known.slices[0], known.slices[1]] = sources
    out = np.stack(list(keep_seen(zip(sources, grey, strict=True), known, reach=8)))
    assert np.mean(out[8:, :, :12] == 128) > 0.95  # the flickering side: left to the model
    right = (slice(0, 5), slice(None), slice(84, 94))  # the steady side: pasted, and right
    assert np.mean(out[right] != 128) > 0.9 and _psnr(out[right], pan_video[right]) > 25


def test_steady_canvases_average_along_the_camera(pan_video) -> None:
    """A static camera whose canvas flickers (fresh noise each frame) comes out far steadier, border and picture
    alike (a canvas has no seam); on a pan, a canvas that is right (the true scenery) stays right, so the averaging
    follows the motion; the source frames pass through untouched, paired with their own canvases."""
    from m3ddm.geometry import Rect
    from m3ddm.propagation import steady_canvases

    known = Rect(12, 0, 72, 96)
    rng = np.random.default_rng(0)
    still = np.repeat(pan_video[:1], 12, axis=0).astype(np.int16)
    flicker = np.clip(still + rng.normal(0, 20, still.shape), 0, 255).astype(np.uint8)
    sources = np.ascontiguousarray(still[:, :, 12:84]).astype(np.uint8)
    pairs = list(steady_canvases(zip(sources, flicker, strict=True), known, 4))
    assert np.array_equal(np.stack([source for source, _ in pairs]), sources)
    out = np.stack([canvas for _, canvas in pairs])
    change = lambda v: np.abs(np.diff(v.astype(float), axis=0)).mean()  # noqa: E731
    assert change(out) < 0.4 * change(flicker)
    # a pan whose canvas is the truth: averaged along the motion it stays the truth (not smeared)
    pan_sources = np.ascontiguousarray(pan_video[:, :, 12:84])
    panned = np.stack([c for _, c in steady_canvases(zip(pan_sources, pan_video, strict=True), known, 4)])
    assert _psnr(panned[4:12, :, 2:10], pan_video[4:12, :, 2:10]) > 30
    assert _psnr(panned[4:12, :, 20:70], pan_video[4:12, :, 20:70]) > 30


def test_keep_seen_drops_seen_slivers_thin_against_a_deep_border(pan_video) -> None:
    """Four frames each way of a 3-pixel pan confirm a 9-pixel strip (seen by two of them) beside a border 96 pixels
    deep: a sliver that would read as a line, so nothing is pasted; beside a border 12 pixels deep it is pasted."""
    from m3ddm.geometry import Rect
    from m3ddm.propagation import keep_seen

    sources = np.ascontiguousarray(pan_video[:, :, 12:84])
    deep = np.full((16, 96, 72 + 2 * 96, 3), 128, np.uint8)
    deep[:, :, 96:168] = sources
    out = np.stack(list(keep_seen(zip(sources, deep, strict=True), Rect(96, 0, 72, 96), reach=4)))
    assert np.array_equal(out, deep)
    shallow = np.full((16, 96, 96, 3), 128, np.uint8)
    shallow[:, :, 12:84] = sources
    out = np.stack(list(keep_seen(zip(sources, shallow, strict=True), Rect(12, 0, 72, 96), reach=4)))
    assert np.mean(out[4:12, :, 4:12] != 128) > 0.9


def test_a_source_is_pasted_only_where_it_continues_the_picture() -> None:
    """The continuity check of keep-seen: a border pixel may come from a warped source only where that source
    agrees with the picture in the band just inside the picture's nearest edge (a motion that fits a large moving
    object, not the scene beside the edge, fails there); a pixel whose nearest picture pixel the source does not
    cover gets nothing."""
    from m3ddm.geometry import Rect
    from m3ddm.propagation import SEEN_AGREEMENT, SEEN_EDGE_BAND, _continues_picture

    known = Rect(20, 0, 60, 80)  # a 100x80 output, borders left and right
    box = (0, 0)  # the box is the whole output here
    difference = np.zeros((80, 100), dtype=np.float32)
    difference[40:, 20:40] = 3 * SEEN_AGREEMENT  # lower left: the source does not fit the picture there
    overlap = np.zeros((80, 100), dtype=bool)
    overlap[:, 20:75] = True  # the source covers the picture but for its 5 rightmost columns
    allowed = _continues_picture(difference, overlap, known, *box)
    assert allowed[: 40 - SEEN_EDGE_BAND, :20].all()  # upper left: continues the picture
    assert not allowed[40 + SEEN_EDGE_BAND :, :20].any()  # lower left: would not
    assert not allowed[:, 80:].any()  # right: the picture's edge there is not covered by this source


def test_camera_motion_measured_once_per_frame_equals_pairwise(pan_video) -> None:
    """CameraMotion finds each frame's features once; its motions are those of estimate_motion on each pair."""
    from m3ddm.propagation import CameraMotion

    motion = CameraMotion()
    for frame in pan_video[:5]:
        motion.add(frame)
    small = [motion_frame(frame) for frame in pan_video[:5]]
    assert len(motion.steps) == 4
    for step, a, b in zip(motion.steps, small[:-1], small[1:], strict=True):
        assert np.allclose(step, estimate_motion(a, b))


def test_dense_flow_fallback_measured_small_is_in_the_frames_pixels() -> None:
    """The dense-flow fallback runs on frames shrunk to FLOW_SIZE; its motion comes back in the frames' pixels."""
    import cv2

    from m3ddm.propagation import FLOW_SIZE, _flow_homography

    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (260, 360)).astype(np.float32), (0, 0), 6)
    smooth = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    a, b = smooth[10:250, 20:340], smooth[10:250, 14:334]  # 320 wide (> FLOW_SIZE); content moves 6 px right
    assert max(a.shape) > FLOW_SIZE
    matrix = _flow_homography(a, b)
    matrix = matrix / matrix[2, 2]
    assert matrix[0, 2] == pytest.approx(6.0, abs=0.75) and matrix[1, 2] == pytest.approx(0.0, abs=0.75)
    assert np.allclose(matrix[:2, :2], np.eye(2), atol=0.02)


def test_camera_motion_tells_a_still_camera_from_a_moving_one(pan_video) -> None:
    """still(): no cut and the frame's corners drift less than the tolerance over the frames asked about."""
    from m3ddm.propagation import CameraMotion

    still, pan, cut = CameraMotion(), CameraMotion(), CameraMotion()
    for t in range(6):
        still.add(pan_video[0])
        pan.add(pan_video[t])
    for frame in (pan_video[0], pan_video[0], np.random.default_rng(0).integers(0, 256, pan_video[0].shape,
                                                                                    dtype=np.uint8)):
        cut.add(frame)
    assert still.still(0, 5, 96, 96, 0.5)
    assert pan.still(0, 0, 96, 96, 0.5) and not pan.still(0, 5, 96, 96, 0.5)  # 3 px a frame at 96 px
    assert pan.still(0, 5, 6, 6, 2.0)  # the same pan seen on a 6-cell grid: 15 px = 0.94 cells, within 2
    assert cut.still(0, 1, 96, 96, 0.5) and not cut.still(0, 2, 96, 96, 0.5)
