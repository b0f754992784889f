"""Frames to working canvas, and generated canvas back to output frames.

``build_canvas`` letterboxes a source frame into the canvas (black outside the known rectangle);
``prefill_telea`` is the official pre-fill of the border; ``compose`` puts the generated border around the
untouched source at the output size, on the generated side of the seam only: a low-frequency colour correction
(the border is shifted so the model's own rendering of the known region's edge matches the source there) and a
feather whose width scales with the upscale from the canvas to the output.
"""

from __future__ import annotations

import cv2
import numpy as np

from m3ddm.geometry import Geometry, Rect


def resize(image: np.ndarray, width: int, height: int, official: bool = False) -> np.ndarray:
    """Resize with INTER_AREA when shrinking (anti-aliased) and bilinear otherwise; ``official``: the official
    driver's OpenCV bilinear on float pixels, truncated back to uint8 (aliased when shrinking)."""
    h, w = image.shape[:2]
    if official:
        return cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    if (w, h) == (width, height):
        return image.copy()
    shrinking = width <= w and height <= h
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _check_frame(frame: np.ndarray, height: int, width: int, what: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[:2] != (height, width):
        raise ValueError(f"{what} must be a {height}x{width}xC uint8 array, got {frame.shape} {frame.dtype}")
    return frame


def build_canvas(frame: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Letterbox one HxWxC uint8 source frame into the working canvas.

    Returns the canvas (``canvas_h x canvas_w x C`` uint8, black where the mask is 1) and the mask
    (``canvas_h x canvas_w`` uint8, 1 = generate).
    """
    frame = _check_frame(frame, geometry.src_h, geometry.src_w, "the source frame")
    known = geometry.known
    canvas = np.zeros((geometry.canvas_h, geometry.canvas_w, frame.shape[2]), dtype=np.uint8)
    canvas[known.slices] = resize(frame, known.w, known.h, geometry.official).reshape(known.h, known.w, -1)
    return canvas, geometry.mask


def prefill_telea(canvas: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """Fill the masked area with OpenCV's TELEA inpainting, as the official driver does before encoding."""
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    if not mask.any():
        return canvas.copy()
    return cv2.inpaint(np.ascontiguousarray(canvas), mask, radius, cv2.INPAINT_TELEA).reshape(canvas.shape)


def prefill_smooth(canvas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the masked area with a smooth extrapolation of the known colours (push-pull over a Gaussian pyramid):
    each level averages the known pixels below it, and holes take the coarser level's colours, so the fill is the
    picture's edge colours blurred more the further they reach, with no streaks (TELEA draws the edge's pixels out
    in lines)."""
    hole = np.asarray(mask) > 0
    if not hole.any():
        return canvas.copy()
    weight = (~hole).astype(np.float32)
    pixels = canvas.astype(np.float32).reshape(*hole.shape, -1) * weight[..., None]
    levels = [(pixels, weight)]
    while weight.min() <= 0 and min(weight.shape) > 1:
        pixels = cv2.pyrDown(pixels).reshape(*cv2.pyrDown(weight).shape, -1)
        weight = cv2.pyrDown(weight)
        levels.append((pixels, weight))
    filled = levels[-1][0] / np.maximum(levels[-1][1], 1e-6)[..., None]
    for pixels, weight in reversed(levels[:-1]):
        coarse = cv2.pyrUp(filled, dstsize=(weight.shape[1], weight.shape[0])).reshape(pixels.shape)
        share = np.clip(weight, 0.0, 1.0)[..., None]  # known (1), partly known (edge), or unknown (0)
        filled = share * pixels / np.maximum(weight, 1e-6)[..., None] + (1.0 - share) * coarse
    out = canvas.copy()
    out[hole] = np.clip(np.rint(filled.reshape(canvas.shape)[hole]), 0, 255).astype(canvas.dtype)
    return out


MIRROR_FADE, MIRROR_END = 3.0, 8.0  # output pixels: the seam's mirror image fades out between these distances
TEXTURE_LIMIT = 12.0  # levels: the borrowed detail is squashed to about this, so an edge lends a faint line, not a copy
TEXTURE_SIGMA = 2.0  # output pixels: grain only (a wider band lends the shapes of the picture's edge, not its texture)
TEXTURE_EDGE_SIGMA = 3.0  # output pixels: blurred this much, grain is gone and an object's edge still slopes
TEXTURE_EDGE_SLOPE = 4.0  # levels a pixel: a slope like this halves the lent detail (steeper: an edge, lent less)
TEXTURE_REACH = 3  # the lent detail reaches this many ramps (feather bands) into the border


def compose(source: np.ndarray, generated: np.ndarray, geometry: Geometry, feather: int = 4,
            colour_match: bool = True, texture: float = 0.0) -> np.ndarray:
    """Put the generated border around the source at the output size.

    ``source`` is the original frame (``src_h x src_w x C`` uint8), ``generated`` the decoded canvas
    (``canvas_h x canvas_w x C`` uint8). Inside the known region the output is the source exactly (at
    full resolution in the default mode). The generated canvas is mapped so that its known rectangle lands
    exactly on the source's place in the output. Then, outside the known region only:

    * ``colour_match``: the decoded canvas also renders the known region, a little blurred and shifted in colour;
      the difference source - rendering along each edge, smoothed along the edge, is added to the border next to
      that edge, fading to nothing at the frame's edge, so the band's colour and brightness continue the source's;
    * over ``feather`` *canvas* pixels (that many times the upscale in output pixels) the source's edge pixels fade
      into the border, so no seam line shows at any output size;
    * ``texture`` (0 = off, 1 = full weight): the source's fine grain, finer than the upscale the border was painted
      at, is lent to the band of the border next to it (:func:`add_texture`).

    In the "official" output mode everything stays at the working size: the target is cropped from the
    canvas and the known region comes from the letterboxed canvas (with ``feather=0`` and no colour match this is
    exactly the official ``known * (1 - m) + generated * m``).
    """
    source = _check_frame(source, geometry.src_h, geometry.src_w, "the source frame")
    generated = _check_frame(generated, geometry.canvas_h, geometry.canvas_w, "the generated canvas")
    out_w, out_h, out_known = geometry.output_w, geometry.output_h, geometry.output_known
    if geometry.output_mode == "official":
        crop = geometry.crop
        canvas_known = build_canvas(source, geometry)[0][geometry.known.slices]
        border = generated[crop.y0 : crop.y0 + out_h, crop.x0 : crop.x0 + out_w].copy()
        # the known rectangle may stick out of the crop by a pixel; take the part inside
        dx, dy = out_known.x0 - (geometry.known.x0 - crop.x0), out_known.y0 - (geometry.known.y0 - crop.y0)
        known_pixels = canvas_known[dy : dy + out_known.h, dx : dx + out_known.w]
        upscale = 1.0
    else:
        border = _map_canvas_onto_output(generated, geometry)
        same_size = (out_known.w, out_known.h) == (geometry.src_w, geometry.src_h)
        known_pixels = source if same_size else resize(source, out_known.w, out_known.h)
        upscale = max(out_known.w / geometry.known.w, out_known.h / geometry.known.h, 1.0)
    band = max(0, round(feather * upscale))
    if colour_match and feather > 0:
        border = _match_colour_outside(border, known_pixels, out_known, depth=max(2, band))
    out = _feather_outside(border, known_pixels, out_known, band, detail=max(1.0, upscale))
    if texture > 0 and geometry.output_mode != "official":
        out = add_texture(out, known_pixels, out_known, texture, scale=upscale, ramp=max(band, 1))
    out[out_known.slices] = known_pixels
    return out


def add_texture(frame: np.ndarray, known_pixels: np.ndarray, known: Rect, amount: float, scale: float,
                ramp: int) -> np.ndarray:
    """Lend the source's fine detail to the band of the border next to ``known`` (the model paints the border at the
    working size, so upscaled it has no detail finer than ``scale`` output pixels: next to the picture the change
    from sharp to soft shows, and a lawn keeps its colour, not its grass).

    The detail is the source minus its Gaussian blur (sigma :data:`TEXTURE_SIGMA`, less if ``scale`` is), squashed
    to about :data:`TEXTURE_LIMIT` levels and weakened along object edges (:func:`_texture_gate`). Each side borrows
    the strip of the source next to it, ``reach = TEXTURE_REACH * ramp`` pixels wide, moved outwards by that width (a
    translation, not a mirror image, so the detail moves the way the picture does), rows with rows and columns with
    columns. Its weight rises from 0 at the picture's edge to ``amount`` over ``ramp`` pixels (the strip's far end
    does not continue the edge) and falls back to 0 at ``reach`` (further out, repeating the strip would paint a
    pattern).
    """
    source = known_pixels.reshape(known.h, known.w, -1).astype(np.float32)
    sigma = min(TEXTURE_SIGMA, max(1.0, float(scale)))
    detail = source - cv2.GaussianBlur(source, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    detail = (TEXTURE_LIMIT * np.tanh(detail / TEXTURE_LIMIT)).reshape(known.h, known.w, -1)
    detail *= _texture_gate(source)[..., None]
    height, width = frame.shape[:2]
    reach = max(2, TEXTURE_REACH * ramp)
    # only the rectangle within reach of the picture changes (at 9:16 from 16:9, half of the frame)
    ys = np.arange(max(0, known.y0 - reach), min(height, known.y1 + reach))
    xs = np.arange(max(0, known.x0 - reach), min(width, known.x1 + reach))
    rows = _borrowed(height, known.y0, known.y1, reach)[ys]
    cols = _borrowed(width, known.x0, known.x1, reach)[xs]
    lent = detail[rows[:, None], cols[None, :]]
    distance = np.maximum(_beyond(ys, known.y0, known.y1)[:, None],
                          _beyond(xs, known.x0, known.x1)[None, :]).astype(np.float32)
    rise = np.clip(distance / (ramp + 1), 0.0, 1.0)
    fall = np.clip((reach - distance) / max(1, reach - ramp), 0.0, 1.0)
    weight = (amount * rise * fall)[..., None]
    out = frame.copy().reshape(height, width, -1)
    near = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    out[near] = np.clip(np.rint(out[near].astype(np.float32) + weight * lent), 0, 255).astype(np.uint8)
    return out.reshape(frame.shape)


def _texture_gate(source: np.ndarray) -> np.ndarray:
    """``[H, W]`` in (0, 1]: near 0 along the source's object edges (a cup's rim, a roof line: their detail would be
    lent as a faint copy of the shape), near 1 in texture (grass, wood, foliage), told apart by the slope of the
    luminance once the grain is blurred away (:data:`TEXTURE_EDGE_SIGMA`): an edge keeps a steep slope, grain not."""
    grey = source.mean(axis=-1) if source.ndim == 3 else source
    smooth = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), sigmaX=TEXTURE_EDGE_SIGMA,
                              borderType=cv2.BORDER_REFLECT)
    return 1.0 / (1.0 + (grey_slope(smooth) / TEXTURE_EDGE_SLOPE) ** 2)


def grey_slope(grey: np.ndarray) -> np.ndarray:
    """``[H, W]`` float32: how much a grey image changes a pixel at each pixel (levels; 3x3 Sobel, normalised)."""
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)) / 8


def _beyond(positions: np.ndarray, start: int, stop: int) -> np.ndarray:
    """How many pixels each position lies outside ``[start, stop)`` (0 inside)."""
    return np.maximum(np.maximum(start - positions, positions - (stop - 1)), 0)


def _borrowed(length: int, start: int, stop: int, reach: int) -> np.ndarray:
    """For each output position along one axis, the source position whose detail it borrows: itself inside
    ``[start, stop)``; beyond a side, the strip next to that side (``reach`` wide, at most the source and the
    border), moved outwards by its width (and repeated, where the weight is 0)."""
    size = stop - start
    index = np.arange(length) - start
    before = max(1, min(start, size, reach))
    after = max(1, min(length - stop, size, reach))
    out = index.copy()
    out[index < 0] = np.mod(index[index < 0], before)
    beyond = index >= size
    out[beyond] = size - after + np.mod(index[beyond] - size, after)
    return out


def _match_colour_outside(border: np.ndarray, known_pixels: np.ndarray, known: Rect, depth: int) -> np.ndarray:
    """Shift the border's colour so that it continues the source's across each edge of the known rectangle.

    For each side with a border: the offset profile along the edge is the mean of (source - border) over the
    ``depth`` rows/columns just inside the edge (where ``border`` holds the model's rendering of the source),
    Gaussian-smoothed along the edge (sigma 4 * depth: low frequencies only, so no structure is copied). It is
    added to the border on that side with a weight falling linearly from 1 at the edge to 0 at the frame's edge.
    """
    out = border.astype(np.float32)
    height, width = out.shape[:2]
    diff = known_pixels.astype(np.float32) - out[known.slices]
    depth_y, depth_x = min(depth, known.h), min(depth, known.w)
    sigma = 4.0 * depth

    def profile(strip: np.ndarray) -> np.ndarray:  # [length, C] smoothed along its length
        line = strip.mean(axis=0, keepdims=True)
        return cv2.GaussianBlur(line, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)[0]

    def fade(count: int) -> np.ndarray:  # weights for rows/cols 1 .. count away from the edge
        return (1.0 - np.arange(count, dtype=np.float32) / max(count, 1))

    xs = np.clip(np.arange(width) - known.x0, 0, known.w - 1)  # along top/bottom edges, extended past corners
    ys = np.clip(np.arange(height) - known.y0, 0, known.h - 1)
    if known.y0 > 0:
        offset = profile(diff[:depth_y])[xs]
        out[: known.y0] += fade(known.y0)[::-1, None, None] * offset[None]
    if known.y1 < height:
        offset = profile(diff[known.h - depth_y :])[xs]
        out[known.y1 :] += fade(height - known.y1)[:, None, None] * offset[None]
    if known.x0 > 0:
        offset = profile(diff[:, :depth_x].transpose(1, 0, 2))[ys]
        out[:, : known.x0] += fade(known.x0)[None, ::-1, None] * offset[:, None]
    if known.x1 < width:
        offset = profile(diff[:, known.w - depth_x :].transpose(1, 0, 2))[ys]
        out[:, known.x1 :] += fade(width - known.x1)[None, :, None] * offset[:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _map_canvas_onto_output(canvas: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Resample the canvas to the output so its known rectangle lands exactly on the source's place.

    Per axis the mapping is piecewise linear: crop edge -> output edge, known edges -> source edges. The
    known rectangle was rounded to whole canvas pixels, so the border on each side has its own slightly
    different scale; one affine map would misplace the far border by up to half a canvas pixel.
    """
    crop, src, dst = geometry.crop, geometry.known, geometry.output_known
    out_w, out_h = geometry.output_w, geometry.output_h
    channels = canvas.shape[2]
    fx, fy = min(1.0, out_w / crop.w), min(1.0, out_h / crop.h)
    if fx < 1 or fy < 1:  # shrink first with area averaging (remap does not anti-alias)
        small_w, small_h = max(1, round(canvas.shape[1] * fx)), max(1, round(canvas.shape[0] * fy))
        fx, fy = small_w / canvas.shape[1], small_h / canvas.shape[0]
        canvas = resize(canvas, small_w, small_h).reshape(small_h, small_w, channels)
    map_x = _axis_map(out_w, (dst.x0, dst.x1), (crop.x0 * fx, src.x0 * fx, src.x1 * fx, crop.x1 * fx))
    map_y = _axis_map(out_h, (dst.y0, dst.y1), (crop.y0 * fy, src.y0 * fy, src.y1 * fy, crop.y1 * fy))
    grid_x = np.ascontiguousarray(np.broadcast_to(map_x[None, :], (out_h, out_w)))
    grid_y = np.ascontiguousarray(np.broadcast_to(map_y[:, None], (out_h, out_w)))
    warped = cv2.remap(canvas, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(out_h, out_w, channels)


def _axis_map(length: int, dst: tuple[int, int], src: tuple[float, float, float, float]) -> np.ndarray:
    """Source pixel-centre coordinate for each of ``length`` output pixels, in edge coordinates
    piecewise linear through (0, lo), (dst0, src0), (dst1, src1), (length, hi)."""
    out_knots, src_knots = [0.0], [src[0]]
    for out_edge, src_edge in ((dst[0], src[1]), (dst[1], src[2]), (length, src[3])):
        if out_edge > out_knots[-1]:  # skip empty borders (a side without pad)
            out_knots.append(float(out_edge))
            src_knots.append(src_edge)
        else:
            src_knots[-1] = src_edge
    centres = np.arange(length, dtype=np.float64) + 0.5
    return (np.interp(centres, out_knots, src_knots) - 0.5).astype(np.float32)


def _feather_outside(border: np.ndarray, known_pixels: np.ndarray, known: Rect, feather: int,
                     detail: float = 1.0) -> np.ndarray:
    """Blend the known region's edge (extended outwards) into the border near the rectangle.

    Weight of the extended edge at distance d (pixels) outside the rectangle: 1 - d / (feather + 1). The extension
    is the edge line blurred along its length (sigma ``detail``) plus fine detail fading out over ``detail`` pixels,
    the detail of the source *mirrored* across the edge: copying the edge pixels outwards would stretch every grass
    blade on the edge into a streak, and the border has no detail finer than ``detail`` output pixels (the upscale
    from the canvas), so the source's own texture has to hand over to it within that distance. The mirror image
    also fades out between :data:`MIRROR_FADE` and :data:`MIRROR_END` pixels: at a large upscale (18x) a long mirror
    turns every spot on the edge into a symmetric shape (a row of rings along the seam).
    """
    out = border.copy()
    if feather <= 0:
        return out
    height, width = out.shape[:2]
    y0, y1 = max(known.y0 - feather, 0), min(known.y1 + feather, height)
    x0, x1 = max(known.x0 - feather, 0), min(known.x1 + feather, width)
    pixels = known_pixels.reshape(known.h, known.w, -1)
    depth = int(np.ceil(min(detail, MIRROR_END)))  # how far the mirrored detail reaches (it has faded out beyond)

    def blur(line: np.ndarray) -> np.ndarray:  # [length, C] blurred along its length
        return cv2.GaussianBlur(line[None], (0, 0), sigmaX=detail, borderType=cv2.BORDER_REPLICATE).reshape(line.shape)

    def mirrored(outside: np.ndarray, size: int, far_side: bool) -> np.ndarray:
        """Index of the known line that mirrors the line ``outside`` pixels beyond the edge (1 = next to it)."""
        inside = np.clip(outside - 1, 0, min(depth, size - 1))
        return size - 1 - inside if far_side else inside

    # the band outside the rectangle in four strips (the corners go with the top and bottom ones): rows, columns,
    # and whether the strip lies above/below the rectangle (its edge line runs along the columns) and on its far side
    strips = [(range(y0, known.y0), range(x0, x1), True, False), (range(known.y1, y1), range(x0, x1), True, True),
              (range(known.y0, known.y1), range(x0, known.x0), False, False),
              (range(known.y0, known.y1), range(known.x1, x1), False, True)]
    for rows, cols, along_columns, far_side in strips:
        if not rows or not cols:
            continue
        ys, xs = np.asarray(rows), np.asarray(cols)
        dy, dx = _beyond(ys, known.y0, known.y1), _beyond(xs, known.x0, known.x1)
        distance = np.sqrt(dy[:, None] ** 2.0 + dx[None, :] ** 2.0).astype(np.float32)[..., None]
        weight = np.clip(1.0 - distance / (feather + 1), 0.0, 1.0)
        # a mirror image further out makes every spot on the edge a symmetric shape (rings along the seam at 18x)
        keep_detail = np.clip(1.0 - distance / (detail + 1), 0.0, 1.0) * np.clip(
            (MIRROR_END - distance) / (MIRROR_END - MIRROR_FADE), 0.0, 1.0)
        # along the edge: the nearest edge position (the corner one for the corners); across it: the mirror image
        along_x, along_y = np.clip(xs - known.x0, 0, known.w - 1), np.clip(ys - known.y0, 0, known.h - 1)
        if along_columns:
            line = pixels[-1 if far_side else 0].astype(np.float32)
            smooth = blur(line)[along_x][None, :]
            sharp = pixels[mirrored(dy, known.h, far_side)[:, None], along_x[None, :]].astype(np.float32)
        else:
            line = pixels[:, -1 if far_side else 0].astype(np.float32)
            smooth = blur(line)[along_y][:, None]
            sharp = pixels[along_y[:, None], mirrored(dx, known.w, far_side)[None, :]].astype(np.float32)
        extension = smooth + keep_detail * (sharp - smooth)
        target = out[rows.start : rows.stop, cols.start : cols.stop]  # a view: written in place
        current = target.astype(np.float32).reshape(extension.shape)
        target[...] = np.rint(weight * extension + (1.0 - weight) * current).clip(0, 255).astype(np.uint8).reshape(
            target.shape)
    return out
