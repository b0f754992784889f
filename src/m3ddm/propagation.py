"""Fill a video's border with pixels other frames saw: global motion, chained over a shot, nearest frame first.

In a pan the strip beyond the left edge of frame t was inside the picture some frames earlier; bringing those
pixels back is what flow-guided video inpainting does (in the spirit of Dehan et al., CVPR-W 2022, the paper's
flow-based baseline). Here the motion between consecutive frames is one homography (ORB matches + RANSAC, falling
back to dense Farneback flow), accepted only where the two frames agree once aligned; a frame pair without a
reliable motion (a cut) starts a new shot, and shots never lend each other pixels. What no frame of the shot saw is
inpainted with TELEA (``m3ddm.canvas.prefill_telea``).

Used as the ``propagate`` baseline of ``m3ddm evaluate`` and as the pipeline's ``--prefill propagate`` (the start
the model refines, instead of per-frame TELEA); the same motion steadies the decoded canvases (``steady_canvases``,
``--steady``) and pastes seen pixels into the composed frames (``keep_seen``, ``--keep-seen``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from m3ddm.canvas import grey_slope, prefill_telea, resize
from m3ddm.geometry import Rect

# A motion or a warped source is accepted only if it agrees with the target where they overlap (mean absolute
# difference in uint8 units): misalignments and other shots are rejected.
MAX_OVERLAP_ERROR = 24.0
MIN_OVERLAP_PIXELS = 64
# The still camera is preferred to a measured motion when, frame to frame, it matches at least this share more of
# the picture's textured pixels (slope above TEXTURE_LEVELS a pixel), within MATCH_LEVELS grey levels (noise and
# compression pass, a shifted texture does not).
STILL_MARGIN = 0.05
MATCH_LEVELS = 6
TEXTURE_LEVELS = 4.0
# Motion is measured on grey frames at most this long a side: enough detail for ORB, cheap for long videos.
MOTION_SIZE = 320

Pads = tuple[int, int, int, int]  # left, top, right, bottom in pixels


def motion_frame(frame: np.ndarray, limit: int = MOTION_SIZE) -> np.ndarray:
    """A grey copy of ``frame`` (uint8 RGB) at most ``limit`` pixels a side, for ``estimate_motion``."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    h, w = grey.shape
    scale = min(1.0, limit / max(h, w))
    return grey if scale == 1.0 else resize(grey, max(1, round(w * scale)), max(1, round(h * scale)))


def _plausible(matrix: np.ndarray | None, width: int, height: int) -> bool:
    """Reject homographies that fold, flip, or move the frame by more than half its size."""
    if matrix is None or not np.all(np.isfinite(matrix)) or abs(matrix[2, 2]) < 1e-8:
        return False
    matrix = matrix / matrix[2, 2]
    det = np.linalg.det(matrix[:2, :2])
    if not 0.5 < det < 2.0:
        return False
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    moved = cv2.perspectiveTransform(corners[None], matrix)[0]
    return bool(np.abs(moved - corners).max() < 0.5 * max(width, height))


# ORB features kept per motion frame: plenty for one global motion; matching is quadratic in their number.
ORB_FEATURES = 500

OrbFeatures = tuple[Sequence, np.ndarray | None]  # keypoints, descriptors


def _orb_features(grey: np.ndarray) -> OrbFeatures:
    h, w = grey.shape
    edge = max(4, min(31, min(h, w) // 8))
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES, edgeThreshold=edge, patchSize=edge)
    return orb.detectAndCompute(grey, None)


def _orb_homography(a: OrbFeatures, b: OrbFeatures) -> np.ndarray | None:
    (ka, da), (kb, db) = a, b
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 8:
        return None
    src = np.float32([ka[m.queryIdx].pt for m in matches])
    dst = np.float32([kb[m.trainIdx].pt for m in matches])
    matrix, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if matrix is None or inliers is None or inliers.sum() < max(12, 0.3 * len(matches)):
        return None
    return matrix


# Dense flow (the fallback where ORB finds too few features: flat or blurred frames) is computed at most this long
# a side: a global motion needs no finer flow, and Farneback costs 3-4x as much at twice the size.
FLOW_SIZE = 160


def _flow_homography(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    full_h, full_w = a.shape
    if max(full_h, full_w) > FLOW_SIZE:
        small_a, small_b = motion_frame(a, FLOW_SIZE), motion_frame(b, FLOW_SIZE)
        matrix = _flow_homography(small_a, small_b)
        return rescale_motion(matrix, full_w / small_a.shape[1], full_h / small_a.shape[0])
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 5, 1.2, 0)
    h, w = a.shape
    step = max(4, min(h, w) // 24)
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    if len(src) < 8:
        return None
    matrix, _ = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
    return matrix


def _warped(a: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey frame ``a`` brought by ``matrix`` into its own frame size, and where it lands (uint8, 255)."""
    h, w = a.shape
    warped = cv2.warpPerspective(a, matrix, (w, h), flags=cv2.INTER_LINEAR)
    seen = cv2.warpPerspective(np.full_like(a, 255), matrix, (w, h), flags=cv2.INTER_NEAREST)
    return warped, seen


def _aligns(a: np.ndarray, b: np.ndarray, matrix: np.ndarray) -> bool:
    """Whether ``a`` warped by ``matrix`` matches ``b`` on their overlap (grey levels, uint8 units)."""
    h, w = a.shape
    warped, seen = _warped(a, matrix)
    overlap = cv2.erode(seen, np.ones((3, 3), np.uint8)) > 0
    if overlap.sum() < 0.25 * h * w:
        return False
    return float(np.abs(warped[overlap].astype(np.float32) - b[overlap]).mean()) <= MAX_OVERLAP_ERROR


def estimate_motion(a: np.ndarray, b: np.ndarray,
                    features: tuple[OrbFeatures, OrbFeatures] | None = None) -> np.ndarray | None:
    """Homography (3x3) taking pixel coordinates of frame ``a`` to frame ``b`` (RGB or grey, same size); None when
    no reliable one is found (typically a scene cut), which stops propagation between the two frames.
    ``features``: the two frames' ORB features, when the caller computed them already."""
    ga, gb = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.ndim == 3 else f for f in (a, b))
    h, w = ga.shape
    features = features if features is not None else (_orb_features(ga), _orb_features(gb))
    matrix = _orb_homography(*features)
    if not (_plausible(matrix, w, h) and _aligns(ga, gb, matrix)):
        matrix = _flow_homography(ga, gb)  # too few features (flat or blurred frames): dense flow
        if not (_plausible(matrix, w, h) and _aligns(ga, gb, matrix)):
            return None
    matrix = matrix / matrix[2, 2]
    # A still camera with a large object crossing it: the features' motion can be the object's (or a warp folding
    # both), while the still background, frame to frame, matches clearly more of the picture than that motion does.
    textured = grey_slope(gb) > TEXTURE_LEVELS
    if _matched_share(ga, gb, np.eye(3), textured) >= _matched_share(ga, gb, matrix, textured) + STILL_MARGIN:
        return np.eye(3)
    return matrix


def _matched_share(a: np.ndarray, b: np.ndarray, matrix: np.ndarray, textured: np.ndarray) -> float:
    """The share of ``b``'s ``textured`` pixels that ``a`` brought by ``matrix`` matches within ``MATCH_LEVELS`` grey
    levels (flat pixels match under any motion and would tell nothing)."""
    warped, seen = _warped(a, matrix)
    close = np.abs(warped.astype(np.int16) - b.astype(np.int16)) <= MATCH_LEVELS
    return float((close & (seen > 0) & textured).sum() / max(1, int(textured.sum())))


def rescale_motion(matrix: np.ndarray | None, scale_x: float, scale_y: float) -> np.ndarray | None:
    """A motion measured on frames resized by ``1 / scale`` expressed in the original frame's pixels."""
    if matrix is None:
        return None
    scale = np.diag([scale_x, scale_y, 1.0])
    return scale @ matrix @ np.linalg.inv(scale)


@dataclass
class CameraMotion:
    """A video's motions t -> t+1 (None: a cut) in the pixels of its motion frames (``motion_frame``), measured once
    while the video is read, for the pre-fill and the border's stages alike."""

    steps: list[np.ndarray | None] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # (width, height) of the motion frames
    _previous: tuple[np.ndarray, OrbFeatures] | None = field(default=None, repr=False)

    def add(self, frame: np.ndarray) -> None:
        """Measure the motion from the previous frame added to ``frame`` (uint8 RGB); each frame's features are
        found once."""
        small = motion_frame(frame)
        features = _orb_features(small)
        if self._previous is not None:
            previous, previous_features = self._previous
            self.steps.append(estimate_motion(previous, small, (previous_features, features)))
        self._previous, self.size = (small, features), (small.shape[1], small.shape[0])

    def step(self, index: int, width: int, height: int) -> np.ndarray | None:
        """Motion ``index`` (frame ``index`` -> ``index + 1``) in the pixels of frames resized to ``width`` x
        ``height``."""
        return rescale_motion(self.steps[index], width / self.size[0], height / self.size[1])

    def still(self, first: int, last: int, width: int, height: int, tolerance: float) -> bool:
        """Whether the camera holds still from frame ``first`` to every frame up to ``last``: no cut, and the
        corners of a frame resized to ``width`` x ``height`` move less than ``tolerance`` of its pixels."""
        corners = np.array([[[0, 0], [width, 0], [width, height], [0, height]]], dtype=np.float64)
        matrix = np.eye(3)
        for index in range(first, min(last, len(self.steps))):
            step = self.step(index, width, height)
            if step is None:
                return False
            matrix = step @ matrix
            if np.abs(cv2.perspectiveTransform(corners, matrix) - corners).max() >= tolerance:
                return False
        return True

    def scaled(self, width: int, height: int) -> list[np.ndarray | None]:
        """Every motion in the pixels of frames resized to ``width`` x ``height``."""
        return [self.step(index, width, height) for index in range(len(self.steps))]


def _chain(to_first: np.ndarray, shot: int, motion: np.ndarray | None) -> tuple[np.ndarray, int]:
    """The next frame's map to the first frame of its shot and its shot, given the previous frame's and the motion
    between them (None, a cut, starts a new shot)."""
    return (np.eye(3), shot + 1) if motion is None else (to_first @ np.linalg.inv(motion), shot)


def chain_to_first(motions: Sequence[np.ndarray | None]) -> tuple[list[np.ndarray], list[int]]:
    """From motions t -> t+1: each frame's map to the first frame of its segment, and its segment id.

    A missing motion (None) starts a new segment: frames of different segments are never mixed.
    """
    to_first, segments = [np.eye(3)], [0]
    for motion in motions:
        link, segment = _chain(to_first[-1], segments[-1], motion)
        to_first.append(link)
        segments.append(segment)
    return to_first, segments


def _mean_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images over ``mask`` and their channels (OpenCV: 50x numpy's time)."""
    means = cv2.mean(cv2.absdiff(a, b), mask=mask.astype(np.uint8))
    return float(np.mean(means[: a.shape[2] if a.ndim == 3 else 1]))


def _reaches_border(matrix: np.ndarray, width: int, height: int, pads: Pads) -> bool:
    """Whether the frame mapped by ``matrix`` into the canvas can cover a border pixel: it must stick out of the
    known rectangle by a pixel or more (a static camera's frames never do, and are skipped cheaply)."""
    left, top, _, _ = pads
    corners = np.array([[[0, 0], [width, 0], [width, height], [0, height]]], dtype=np.float64)
    quad = cv2.perspectiveTransform(corners, matrix)[0]
    return bool(quad[:, 0].min() < left - 1 or quad[:, 1].min() < top - 1
                or quad[:, 0].max() > left + width + 1 or quad[:, 1].max() > top + height + 1)


def propagate_border(
    frames: np.ndarray,
    pads: Pads,
    motions: Sequence[np.ndarray | None] | None = None,
    *,
    max_distance: int | None = None,
    fill: Callable[[np.ndarray, np.ndarray], np.ndarray] = prefill_telea,
) -> np.ndarray:
    """Canvases ``[F, h + top + bottom, w + left + right, 3]`` of ``frames`` (uint8 ``[F, h, w, 3]``), their
    borders filled from other frames of the same shot aligned by global motion, nearest in time first, the rest
    by ``fill`` (canvas, mask of what is left) -> canvas: TELEA unless told.

    ``motions`` (t -> t+1, in the pixels of ``frames``; None entries are cuts) are measured from ``frames`` when
    not given. A source is used only where it agrees with the known picture it overlaps; ``max_distance`` limits
    how many frames away a source may be (None: any frame of the shot).
    """
    left, top, right, bottom = (int(p) for p in pads)
    num, h, w = frames.shape[:3]
    if motions is None:
        motions = [estimate_motion(frames[t], frames[t + 1]) for t in range(num - 1)]
    to_first, segment = chain_to_first(motions)
    offset = np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], dtype=np.float64)
    size = (w + left + right, h + top + bottom)
    ones = np.full((h, w), 255, dtype=np.uint8)
    kernel = np.ones((3, 3), dtype=np.uint8)
    out = np.zeros((num, size[1], size[0], frames.shape[3]), dtype=np.uint8)
    for t in range(num):
        canvas = out[t]
        canvas[top : top + h, left : left + w] = frames[t]
        hole = np.ones(canvas.shape[:2], dtype=np.uint8)
        hole[top : top + h, left : left + w] = 0
        from_first = np.linalg.inv(to_first[t])
        same_shot = [s for s in range(num) if s != t and segment[s] == segment[t]]
        for s in sorted(same_shot, key=lambda s: (abs(s - t), s)):
            if not hole.any() or (max_distance is not None and abs(s - t) > max_distance):
                break
            matrix = offset @ from_first @ to_first[s]  # frame s pixels -> canvas of frame t
            if not _reaches_border(matrix, w, h, (left, top, right, bottom)):
                continue
            warped = cv2.warpPerspective(frames[s], matrix, size, flags=cv2.INTER_LINEAR)
            seen = cv2.erode(cv2.warpPerspective(ones, matrix, size, flags=cv2.INTER_NEAREST), kernel) > 0
            overlap = seen & (hole == 0)  # eroded above: no black bleeding from the warped edge
            if overlap.sum() < MIN_OVERLAP_PIXELS:
                continue
            if _mean_difference(warped, canvas, overlap) > MAX_OVERLAP_ERROR:
                continue
            take = seen & (hole > 0)
            canvas[take] = warped[take]
            hole[take] = 0
        out[t] = fill(canvas, hole)
    return out


# Frames each way that --keep-seen looks at: the memory it holds (2 x reach source frames) and its cost per frame.
SEEN_REACH = 30
# Two frames agree on a border pixel when their values differ by at most this (mean over channels, uint8 levels):
# a few levels of noise and compression pass, a misplaced texture does not.
SEEN_AGREEMENT = 12.0
# A source gives a border pixel only where, in the band this deep just inside the picture's nearest edge, it agrees
# (within SEEN_AGREEMENT) with the frame's own picture: the pasted pixels must continue the picture across the seam.
# A motion that fits a large moving object, not the scene beside the edge, fails it there.
SEEN_EDGE_BAND = 6


def _seen_canvas(t: int, sources: dict[int, np.ndarray], to_first: dict[int, np.ndarray], segment: dict[int, int],
                 composed: np.ndarray, known: Rect, min_reach: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``'s output with its border pixels that other frames saw, and the mask of those pixels.

    A pixel counts as seen only when two source frames agree on it (within ``SEEN_AGREEMENT``): the nearest one
    gives it, the next one that covers it confirms it. What moves on its own (an animated scene, a vehicle taken
    for the camera) looks different from frame to frame and is left to the model. Each source is warped only over
    the box its picture lands in, and skipped when that box holds nothing left to fill or to confirm, or when it
    reaches less than ``min_reach`` pixels beyond the picture (what it gives would be a sliver, dropped anyway)."""
    h, w = composed.shape[:2]
    canvas = composed.copy()
    hole = np.ones((h, w), dtype=np.uint8)  # 1: no source gave this border pixel yet
    hole[known.slices] = 0
    pending = np.zeros((h, w), dtype=bool)  # given by one source, waiting for a second
    confirmed = np.zeros((h, w), dtype=bool)
    offset = np.array([[1, 0, known.x0], [0, 1, known.y0], [0, 0, 1]], dtype=np.float64)
    from_first = np.linalg.inv(to_first[t])
    ones = np.full((known.h, known.w), 255, dtype=np.uint8)
    kernel = np.ones((3, 3), dtype=np.uint8)
    corners = np.array([[[0, 0], [known.w, 0], [known.w, known.h], [0, known.h]]], dtype=np.float64)
    for s in sorted((s for s in sources if s != t and segment[s] == segment[t]), key=lambda s: (abs(s - t), s)):
        if not hole.any() and not pending.any():
            break
        matrix = offset @ from_first @ to_first[s]  # frame s's known pixels -> frame t's output
        quad = cv2.perspectiveTransform(corners, matrix)[0]
        reach = max(known.x0 - quad[:, 0].min(), quad[:, 0].max() - known.x1,
                    known.y0 - quad[:, 1].min(), quad[:, 1].max() - known.y1)
        if reach < min_reach:
            continue
        # the box with a margin of 2, so the erosion below treats the picture's edges as the whole-frame one would
        x0, y0 = max(0, int(np.floor(quad[:, 0].min())) - 2), max(0, int(np.floor(quad[:, 1].min())) - 2)
        x1, y1 = min(w, int(np.ceil(quad[:, 0].max())) + 3), min(h, int(np.ceil(quad[:, 1].max())) + 3)
        if x1 <= x0 or y1 <= y0 or not (hole[y0:y1, x0:x1].any() or pending[y0:y1, x0:x1].any()):
            continue  # lands on nothing left to fill or confirm (a static camera's frames, a finished border)
        box = (slice(y0, y1), slice(x0, x1))
        local = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64) @ matrix
        warped = cv2.warpPerspective(sources[s], local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
        seen = cv2.erode(cv2.warpPerspective(ones, local, (x1 - x0, y1 - y0), flags=cv2.INTER_NEAREST),
                         kernel) > 0
        patch, patch_hole, patch_pending = canvas[box], hole[box], pending[box]
        overlap = seen & (patch_hole == 0)
        if overlap.sum() < MIN_OVERLAP_PIXELS:
            continue
        if _mean_difference(warped, patch, overlap) > MAX_OVERLAP_ERROR:
            continue
        difference = cv2.absdiff(warped, patch).astype(np.float32).mean(axis=-1)
        seen &= _continues_picture(difference, overlap, known, x0, y0)
        second = seen & patch_pending
        if second.any():
            confirmed[box] |= second & (difference <= SEEN_AGREEMENT)
            patch_pending[second] = False  # confirmed, or left to the model
        first = seen & (patch_hole > 0)
        patch[first] = warped[first]
        patch_hole[first] = 0
        patch_pending[first] = True
    return canvas, confirmed


def _continues_picture(difference: np.ndarray, overlap: np.ndarray, known: Rect, x0: int, y0: int) -> np.ndarray:
    """Border pixels of a box (top-left ``x0, y0`` in the output) where a warped source would continue the picture:
    over the ``SEEN_EDGE_BAND`` pixels just inside the picture's edge nearest to the pixel, the source's mean
    ``difference`` from the picture (over ``overlap``, where both exist) is at most ``SEEN_AGREEMENT``."""
    size = 2 * SEEN_EDGE_BAND + 1
    inside = overlap.astype(np.float32)
    total = cv2.boxFilter(difference * inside, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(inside, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    # evidence: the source covers at least half of the band's part of the window (an edge pixel's window is half in)
    agrees = (count >= (SEEN_EDGE_BAND + 1) * size / 2) & (total <= SEEN_AGREEMENT * count)
    # each pixel's nearest picture pixel, in the box's coordinates (outside the box: no evidence, not given)
    h, w = difference.shape
    xs = np.clip(np.arange(w) + x0, known.x0, known.x1 - 1) - x0
    ys = np.clip(np.arange(h) + y0, known.y0, known.y1 - 1) - y0
    valid_x, valid_y = (xs >= 0) & (xs < w), (ys >= 0) & (ys < h)
    nearest = agrees[np.clip(ys, 0, h - 1)[:, None], np.clip(xs, 0, w - 1)[None, :]]
    return nearest & valid_y[:, None] & valid_x[None, :]


@dataclass
class _Frame:
    """One frame in the border's streaming stages: its source pixels (resized to the picture for keep-seen), its
    output so far, its map to the first frame of its shot and the shot's number."""

    source: np.ndarray
    output: np.ndarray
    to_first: np.ndarray
    shot: int


def _with_motion(pairs: Iterator[tuple[np.ndarray, np.ndarray]], known: Rect, motion: CameraMotion | None,
                 picture: bool = True) -> Iterator[_Frame]:
    """(source frame, output frame) pairs with the camera's motion chained over each shot: ``motion`` measured
    before (the pipeline's, from encoding), else measured here as the frames come. ``picture``: the frames carry
    their source resized to ``known`` (what keep-seen pastes from), else the source as given."""
    measured = motion is None
    motion = CameraMotion() if measured else motion
    last = None
    for index, (source, output) in enumerate(pairs):
        keep = not picture or source.shape[:2] == (known.h, known.w)
        pixels = source if keep else resize(source, known.w, known.h)
        if measured:
            motion.add(source)
        if last is None:
            frame = _Frame(pixels, output, np.eye(3), 0)
        else:
            frame = _Frame(pixels, output, *_chain(last.to_first, last.shot, motion.step(index - 1, known.w, known.h)))
        last = frame
        yield frame


def _sliding(frames: Iterator[_Frame], reach: int) -> Iterator[tuple[int, dict[int, _Frame]]]:
    """(t, the frames t - reach .. t + reach that exist) for every t in order: memory holds 2 * reach + 1 frames."""
    window: dict[int, _Frame] = {}
    count = 0
    for index, frame in enumerate(frames):
        window[index] = frame
        count = index + 1
        ready = index - reach
        if ready >= 0:
            yield ready, window
            window.pop(ready - reach, None)
    for t in range(max(0, count - reach), count):
        yield t, window
        window.pop(t - reach, None)


def _keep_seen_stage(frames: Iterator[_Frame], known: Rect, reach: int, blend: float) -> Iterator[_Frame]:
    opening = None
    for t, window in _sliding(frames, reach):
        frame = window[t]
        if opening is None:
            # Seen regions thinner than this are dropped: a sliver of real pixels between the picture and the
            # model's border reads as a line (a slow zoom's 2 pixels; a 15-pixel row of blocks above a 9:16
            # output's picture, 800 pixels deep). At least 2 * blend + 3 pixels and an eighth of the border's depth.
            h, w = frame.output.shape[:2]
            depth = max(known.x0, known.y0, w - known.x1, h - known.y1)
            size = max(2 * round(blend) + 3, round(depth / 8))
            opening = np.ones((size, size), dtype=np.uint8)
        sources = {s: f.source for s, f in window.items()}
        to_first = {s: f.to_first for s, f in window.items()}
        shots = {s: f.shot for s, f in window.items()}
        canvas, taken = _seen_canvas(t, sources, to_first, shots, frame.output, known, opening.shape[0])
        taken = cv2.morphologyEx(taken.astype(np.uint8), cv2.MORPH_OPEN, opening) > 0
        output = frame.output
        if taken.any():
            solid = taken.copy()
            solid[known.slices] = True  # the fade runs toward the unseen border, not toward the picture
            alpha = cv2.GaussianBlur(solid.astype(np.float32), (0, 0), blend) * taken
            mixed = output.astype(np.float32)
            mixed += alpha[..., None] * (canvas.astype(np.float32) - mixed)
            output = np.rint(mixed).astype(np.uint8)
        yield _Frame(frame.source, output, frame.to_first, frame.shot)


def _steady_stage(frames: Iterator[_Frame], known: Rect, radius: int) -> Iterator[_Frame]:
    """Each frame averaged, whole, with its neighbours brought into place by the camera's motion (triangular weights
    over ``radius`` frames each side, same shot only); ``known`` is the source's place in the frames."""
    for t, window in _sliding(frames, radius):
        frame = window[t]
        yield _Frame(frame.source, _steadied(t, window, known, radius), frame.to_first, frame.shot)


def _steadied(t: int, window: dict[int, _Frame], known: Rect, radius: int) -> np.ndarray:
    """Frame ``t``'s output averaged along the motion with the other frames of ``window`` (see ``_steady_stage``)."""
    frame = window[t]
    h, w = frame.output.shape[:2]
    offset = np.array([[1, 0, known.x0], [0, 1, known.y0], [0, 0, 1]], dtype=np.float64)
    kernel = np.ones((3, 3), dtype=np.uint8)
    total = frame.output.astype(np.float32) * (radius + 1)
    weight = np.full((h, w), float(radius + 1), dtype=np.float32)
    from_first = np.linalg.inv(frame.to_first)
    ones = np.full((h, w), 255, dtype=np.uint8)
    for s, other in window.items():
        if s == t or other.shot != frame.shot:
            continue
        matrix = offset @ from_first @ other.to_first @ np.linalg.inv(offset)  # frame s -> frame t
        # replicate: a sample half a pixel outside the neighbour's frame takes its edge, not black
        warped = cv2.warpPerspective(other.output.astype(np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        valid = cv2.erode(cv2.warpPerspective(ones, matrix, (w, h), flags=cv2.INTER_NEAREST), kernel) > 0
        share = float(radius + 1 - abs(s - t))
        total[valid] += share * warped[valid]
        weight[valid] += share
    return np.clip(np.rint(total / weight[..., None]), 0, 255).astype(np.uint8)


def steady_canvases(pairs: Iterator[tuple[np.ndarray, np.ndarray]], known: Rect, radius: int, *,
                    motion: CameraMotion | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(source frame, decoded canvas) pairs with each canvas averaged, whole, with the canvases of ``radius`` frames
    on either side brought into place by the camera's motion (triangular weights, same shot only): less shimmer on
    a static camera and no jump where one window hands over to the next. ``known`` is the source's place in the
    canvas. Taken before composing, so the seam's feather then blends each frame's own picture into a steady
    border (averaging composed frames would mix the neighbours' seams into it)."""
    for frame in _steady_stage(_with_motion(pairs, known, motion, picture=False), known, radius):
        yield frame.source, frame.output


def keep_seen(pairs: Iterator[tuple[np.ndarray, np.ndarray]], known: Rect, *, reach: int = SEEN_REACH,
              blend: float = 2.0, motion: CameraMotion | None = None) -> Iterator[np.ndarray]:
    """Stream output frames whose border pixels that other source frames of the shot saw (up to ``reach`` frames
    away, nearest first; two of them must agree) are those frames' pixels, at the output's resolution.

    ``pairs`` yields (source frame, composed output frame); ``known`` is the source's place in the output (the
    source is resized to it); ``motion``, the camera's if it was measured already (else it is measured here). The
    pasted pixels fade into the rest of the border over about ``blend`` pixels (a Gaussian of the mask of pasted
    pixels and the picture), so no edge shows where what was seen ends; regions thinner than ``2 * blend + 3``
    pixels or an eighth of the border's depth are not pasted (they would read as a line). A frame is yielded once
    the ``reach`` frames after it are read: memory holds ``2 * reach + 1`` frames.
    """
    for frame in _keep_seen_stage(_with_motion(pairs, known, motion), known, reach, blend):
        yield frame.output
