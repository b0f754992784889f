"""Frame folders: a video stored as numbered images (DAVIS, YouTube-VOS, or any folder of jpg/png).

Images are ordered naturally ("2.png" before "10.png"). A folder has no frame rate of its own: it is
the ``fps`` argument, else a ``fps.txt`` file in the folder (e.g. "24" or "30000/1001"), else 24.
Writing goes to a temporary folder that is renamed into place, so a half-written folder never exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from m3ddm.errors import UserError
from m3ddm.io.video import VideoInfo
from m3ddm.utils.atomic import atomic_path

# The image files read as frames or stills, everywhere (frame folders, single images, training data).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FOLDER_FPS = Fraction(24)
FPS_FILE = "fps.txt"


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: frame2 < frame10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The folder's images in natural order; UserError when it is missing or holds none."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"frame folder not found: {folder}")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    files = sorted((p for p in folder.iterdir() if is_image(p)), key=lambda p: natural_key(p.name))
    if not files:
        sequences = find_sequence_folders(folder)
        if sequences:
            names = ", ".join(p.name for p in sequences[:3])
            raise UserError(f"{folder} holds sequences ({names}, ...), not frames; pass one sequence folder")
        raise UserError(f"no images ({'/'.join(e[1:] for e in IMAGE_SUFFIXES)}) in folder {folder}")
    return files


def find_sequence_folders(root: str | os.PathLike) -> list[Path]:
    """Frame folders under a dataset root, sorted: DAVIS (``JPEGImages/480p/<seq>``), YouTube-VOS
    (``[train|valid]/JPEGImages/<id>``), or any folder whose subfolders hold images.
    """
    root = Path(root)
    candidates = [
        root / "JPEGImages" / "480p",
        root / "JPEGImages" / "Full-Resolution",
        root / "JPEGImages",
        root,
    ]
    for split in ("valid", "train", "test"):
        candidates.insert(-1, root / split / "JPEGImages")
    for base in candidates:
        if not base.is_dir():
            continue
        found = [d for d in base.iterdir() if d.is_dir() and any(is_image(p) for p in d.iterdir())]
        if found:
            return sorted(found, key=lambda p: p.name)  # dataset order: plain names (ids are not numbers)
    return []


def folder_fps(folder: Path, fps: Fraction | int | str | None = None) -> Fraction:
    if fps is not None:
        value = Fraction(fps)
    elif (folder / FPS_FILE).is_file():
        text = (folder / FPS_FILE).read_text().strip()
        try:
            value = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise UserError(
                f"{folder / FPS_FILE} should hold a frame rate such as 24 or 30000/1001, not {text!r}"
            ) from None
    else:
        value = DEFAULT_FOLDER_FPS
    if value <= 0:
        raise UserError(f"frame rate must be positive, got {value}")
    return value


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image as RGB uint8 (H x W x 3); EXIF orientation is applied, grey and alpha become RGB."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)  # imdecode, unlike imread, copes with any file name
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError(f"cannot read image {path}")
    return np.ascontiguousarray(image[:, :, ::-1])


def probe_frame_folder(folder: str | os.PathLike, fps: Fraction | int | str | None = None) -> VideoInfo:
    """Describe a frame folder (size from its first image, which is decoded to prove it is readable)."""
    folder = Path(folder)
    files = list_frame_files(folder)
    height, width = read_image(files[0]).shape[:2]
    suffixes = sorted({p.suffix.lower().lstrip(".") for p in files})
    return VideoInfo(
        path=folder,
        width=width,
        height=height,
        fps=folder_fps(folder, fps),
        num_frames=len(files),
        num_frames_exact=True,
        codec="/".join(suffixes),
        container="image folder",
        is_frame_folder=True,
    )


def iter_folder_frames(
    folder: str | os.PathLike, start: int = 0, end: int | None = None
) -> Iterator[np.ndarray]:
    """Yield frames ``start <= i < end`` of a folder as RGB uint8 arrays; all must share one size."""
    files = list_frame_files(folder)
    return _iter_files(files, start, end)


def _iter_files(files: list[Path], start: int, end: int | None) -> Iterator[np.ndarray]:
    expected = None
    for path in files[start:end]:
        frame = read_image(path)
        if expected is None:
            expected = frame.shape
        elif frame.shape != expected:
            raise UserError(
                f"{path} is {frame.shape[1]}x{frame.shape[0]} but earlier frames are "
                f"{expected[1]}x{expected[0]}; all frames of a folder must have one size"
            )
        yield frame


def read_folder_frames(folder: str | os.PathLike, indices: Iterable[int]) -> list[np.ndarray]:
    """Frames at ``indices`` (any order); images are read directly, no scan."""
    files = list_frame_files(folder)
    requested = [int(i) for i in indices]
    for i in requested:
        if not 0 <= i < len(files):
            raise ValueError(f"{folder} has {len(files)} frames; frame {i} does not exist")
    cache = {i: read_image(files[i]) for i in set(requested)}
    return [cache[i] for i in requested]


def write_frame_folder(
    folder: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: Fraction | int | str | None = None,
    ext: str = "png",
    jpeg_quality: int = 95,
) -> int:
    """Write RGB uint8 frames as ``00000.<ext>``, ``00001.<ext>``... (plus ``fps.txt`` when ``fps`` is given).

    The folder is replaced atomically: it appears complete or not at all. Returns the frame count.
    """
    ext = ext.lower().lstrip(".")
    if f".{ext}" not in IMAGE_SUFFIXES:
        raise ValueError(f"unsupported image format {ext!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in ("jpg", "jpeg") else []
    count = 0
    with atomic_path(folder, suffix="") as tmp:
        tmp.mkdir()
        for count, frame in enumerate(frames, start=1):
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(
                    f"frames must be uint8 H x W x 3 RGB arrays, got {frame.dtype} {frame.shape}"
                )
            ok, encoded = cv2.imencode(f".{ext}", np.ascontiguousarray(frame[:, :, ::-1]), params)
            if not ok:
                raise OSError(f"could not encode frame {count - 1} as {ext}")
            encoded.tofile(tmp / f"{count - 1:05d}.{ext}")
        if count == 0:
            raise ValueError(f"no frames to write to {folder}")
        if fps is not None:
            (tmp / FPS_FILE).write_text(f"{Fraction(fps)}\n")
    return count
