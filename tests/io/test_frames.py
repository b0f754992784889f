"""Frame folders (DAVIS, YouTube-VOS, plain image folders) and the common video-source entry point."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from m3ddm.errors import UserError
from m3ddm.io import (
    find_sequence_folders,
    list_frame_files,
    open_video_source,
    read_image,
    write_frame_folder,
)
from m3ddm.io.frames import natural_key
from m3ddm.io.samples import pattern_frame


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def _one_line_user_error(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_natural_order():
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame_b.png", "frame_a.png"]
    assert sorted(names, key=natural_key) == [
        "Frame1.png",
        "frame2.png",
        "frame10.png",
        "frame_a.png",
        "frame_b.png",
    ]


def test_folder_round_trip_is_lossless_and_keeps_fps(tmp_path):
    frames = [pattern_frame(i, 40, 30) for i in range(12)]
    folder = tmp_path / "clip"
    assert write_frame_folder(folder, iter(frames), fps=Fraction(30000, 1001)) == 12
    assert [p.name for p in list_frame_files(folder)][:3] == ["00000.png", "00001.png", "00002.png"]

    source = open_video_source(folder)
    info = source.info
    assert info.is_frame_folder and info.num_frames_exact
    assert (info.num_frames, info.width, info.height, info.fps) == (12, 40, 30, Fraction(30000, 1001))
    assert not info.has_audio
    back = list(source.iter_frames())
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True)) and len(back) == 12
    assert [
        np.array_equal(f, frames[i]) for f, i in zip(source.read([11, 0, 5]), [11, 0, 5], strict=True)
    ] == [True] * 3
    assert len(list(source.iter_frames(start=4, end=7))) == 3
    with pytest.raises(ValueError, match="frame 12 does not exist"):
        source.read([12])


def test_images_sort_naturally_and_fps_defaults_to_24(tmp_path):
    folder = tmp_path / "seq"
    for index in (10, 2, 1):  # written out of order, numbered without padding
        frame = np.full((8, 8, 3), index * 20, np.uint8)
        _save(folder / f"img{index}.png", frame)
    (folder / "notes.txt").write_text("not an image")
    source = open_video_source(folder)
    assert source.info.fps == 24 and source.info.num_frames == 3
    assert [int(f[0, 0, 0]) for f in source.iter_frames()] == [20, 40, 200]
    assert open_video_source(folder, fps=12).info.fps == 12


def test_fps_file_is_read_and_checked(tmp_path):
    folder = tmp_path / "seq"
    _save(folder / "0.png", np.zeros((4, 4, 3), np.uint8))
    (folder / "fps.txt").write_text("25\n")
    assert open_video_source(folder).info.fps == 25
    (folder / "fps.txt").write_text("fast")
    assert "fps.txt" in _one_line_user_error(lambda: open_video_source(folder))


def test_davis_layout(tmp_path):
    root = tmp_path / "DAVIS"
    for name, count in (("bear", 4), ("blackswan", 3)):
        for i in range(count):
            _save(root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg", pattern_frame(i, 48, 32))
    sequences = find_sequence_folders(root)
    assert [p.name for p in sequences] == ["bear", "blackswan"]

    bear = open_video_source(root / "JPEGImages" / "480p" / "bear")
    assert (bear.info.num_frames, bear.info.width, bear.info.height, bear.info.codec) == (4, 48, 32, "jpg")
    first = next(bear.iter_frames())
    assert np.abs(first.astype(int) - pattern_frame(0, 48, 32)).mean() < 4  # JPEG is lossy

    message = _one_line_user_error(lambda: open_video_source(root / "JPEGImages" / "480p"))
    assert "bear" in message and "sequence" in message


def test_youtube_vos_layout(tmp_path):
    root = tmp_path / "youtube-vos"
    for video_id in ("0a2f2bd294", "003234408d"):
        for i in (0, 5, 10):  # YouTube-VOS keeps every fifth frame
            _save(root / "valid" / "JPEGImages" / video_id / f"{i:05d}.jpg", pattern_frame(i, 32, 24))
    sequences = find_sequence_folders(root)
    assert [p.name for p in sequences] == ["003234408d", "0a2f2bd294"]
    assert open_video_source(sequences[0]).info.num_frames == 3


def test_grey_and_alpha_images_become_rgb(tmp_path):
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((5, 6), 77, np.uint8))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(
        str(rgba), np.dstack([np.full((5, 6, 3), (10, 20, 30), np.uint8), np.full((5, 6), 255, np.uint8)])
    )
    assert read_image(grey).shape == (5, 6, 3) and read_image(grey)[0, 0].tolist() == [77, 77, 77]
    assert read_image(rgba)[0, 0].tolist() == [30, 20, 10]  # stored BGR(A) by OpenCV, read back as RGB


def test_bad_folders_raise_user_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in _one_line_user_error(lambda: open_video_source(empty))
    assert "not found" in _one_line_user_error(lambda: open_video_source(tmp_path / "nowhere"))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "00000.png").write_bytes(b"definitely not a png")
    assert "cannot read image" in _one_line_user_error(lambda: open_video_source(broken))

    mixed = tmp_path / "mixed"
    _save(mixed / "0.png", np.zeros((8, 8, 3), np.uint8))
    _save(mixed / "1.png", np.zeros((8, 10, 3), np.uint8))
    source = open_video_source(mixed)
    assert "one size" in _one_line_user_error(lambda: list(source.iter_frames()))


def test_folder_writes_are_atomic(tmp_path):
    target = tmp_path / "out"

    def failing_frames():
        yield pattern_frame(0, 16, 16)
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        write_frame_folder(target, failing_frames())
    assert os.listdir(tmp_path) == []

    write_frame_folder(target, [pattern_frame(0, 16, 16)] * 3)
    with pytest.raises(RuntimeError):
        write_frame_folder(target, failing_frames())
    assert len(list_frame_files(target)) == 3  # the earlier folder is intact
    write_frame_folder(target, [pattern_frame(1, 16, 16)] * 2, ext="jpg")
    assert [p.name for p in list_frame_files(target)] == ["00000.jpg", "00001.jpg"]  # replaced as a whole
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_video_files_and_folders_share_one_interface(make_clip, tmp_path):
    clip = make_clip("c.mp4", frames=9, fps=Fraction(30000, 1001))
    video = open_video_source(clip)
    assert video.info.num_frames_exact and len(video) == 9 and not video.info.is_frame_folder
    frames = list(video.iter_frames())
    write_frame_folder(tmp_path / "as_folder", frames, fps=video.info.fps)
    folder = open_video_source(tmp_path / "as_folder")
    assert (len(folder), folder.info.fps, folder.info.size) == (9, video.info.fps, video.info.size)
    assert all(np.array_equal(a, b) for a, b in zip(folder.read([8, 3]), video.read([8, 3]), strict=True))
    assert open_video_source(clip, fps=10).info.fps == 10
