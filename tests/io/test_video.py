"""Video files: exact fps and counts across containers, round trips, audio carry-over, rotation, errors."""

from __future__ import annotations

import inspect
import os
import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest

from m3ddm.errors import UserError
from m3ddm.io import (
    VideoWriter,
    count_frames,
    iter_frames,
    open_video_source,
    probe_video,
    read_frames,
    write_video,
)
from m3ddm.io.samples import make_test_video, pattern_frame
from m3ddm.io.video import (
    apply_orientation,
    normalize_fps,
    orientation_from_display_matrix,
    orientation_from_rotate_tag,
)
from media_checks import audio_stream_facts, decode_audio, onset_seconds, psnr, write_garbage

NTSC = Fraction(30000, 1001)


# --- reading: frame rate and frame count ------------------------------------------------------------------

CONTAINERS = [
    ("mp4", "libx264", NTSC, 23),
    ("avi", "mpeg4", Fraction(25), 17),
    ("mkv", "libx264", Fraction(24000, 1001), 19),
    ("mov", "libx264", Fraction(12), 11),
    ("webm", "libvpx", Fraction(30), 13),
    ("webm", "libvpx-vp9", NTSC, 16),
    ("avi", "msmpeg4", Fraction(15), 12),
    ("avi", "cinepak", Fraction(10), 10),
    ("mkv", "mpeg4", Fraction(60), 21),
]


@pytest.mark.parametrize(
    ("ext", "codec", "fps", "frames"), CONTAINERS, ids=[f"{c[0]}-{c[1]}" for c in CONTAINERS]
)
def test_fps_and_frame_count_are_exact(make_clip, require_encoder, ext, codec, fps, frames):
    require_encoder(codec)
    path = make_clip(f"clip.{ext}", frames=frames, fps=fps, codec=codec)

    quick = probe_video(path)
    exact = probe_video(path, exact=True)

    assert quick.fps == fps and exact.fps == fps
    assert isinstance(exact.fps, Fraction)
    assert exact.num_frames == frames and exact.num_frames_exact
    assert not quick.num_frames_exact and abs(quick.num_frames - frames) <= 1
    assert count_frames(path) == frames
    decoded = list(iter_frames(path))
    assert len(decoded) == frames
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in decoded)
    assert (exact.width, exact.height) == (64, 48)


def test_normalize_fps_keeps_exact_ratios_and_snaps_only_inexact_values():
    # Ratios as containers store them are kept, even when they are close to a standard rate.
    for exact in (Fraction(2997, 125), Fraction(2997, 100), Fraction(15, 2), NTSC, Fraction(25)):
        assert normalize_fps(exact) == exact
    # Values computed from rounded timestamps (large denominators) become the rate they are a hair from.
    assert normalize_fps(Fraction(29970029, 1000000)) == NTSC
    assert normalize_fps(Fraction(250000001, 10000000)) == 25
    assert normalize_fps(Fraction(75000001, 10000000)) == Fraction(15, 2)
    assert normalize_fps(Fraction(250001, 10000)) == Fraction(250001, 10000)  # 25.0001 is not 25
    assert normalize_fps(29.97) == NTSC and normalize_fps(12.5) == Fraction(25, 2)


def test_a_rate_near_ntsc_is_kept_through_reading_and_writing(make_clip, tmp_path):
    # 2997/125 fps is 1e-6 away from 24000/1001: it used to come back as 24000/1001.
    rate = Fraction(2997, 125)
    path = make_clip("near.mp4", frames=12, fps=rate)
    info = probe_video(path, exact=True)
    assert info.fps == rate and info.timing is None
    write_video(tmp_path / "out.mp4", iter_frames(path), info.fps)
    assert probe_video(tmp_path / "out.mp4", exact=True).fps == rate


def test_probe_reports_codec_audio_and_start(make_clip):
    path = make_clip("a.mp4", frames=12, fps=24, audio="aac", audio_channels=2, audio_rate=44100)
    info = probe_video(path)
    assert info.codec == "h264" and info.container.startswith("mov,mp4")
    assert info.has_audio and info.audio_codec == "aac"
    assert (info.audio_channels, info.audio_sample_rate, info.audio_layout) == (2, 44100, "stereo")
    assert info.start_time == 0.0 and info.duration == pytest.approx(0.5)
    silent = probe_video(make_clip("b.mp4", frames=3))
    assert not silent.has_audio and silent.audio_codec is None


def test_iter_frames_streams_and_read_frames_picks_a_subset(make_clip):
    path = make_clip("s.mp4", frames=20)
    frames = iter_frames(path, start=5, end=9)
    assert inspect.isgenerator(frames)
    window = list(frames)
    everything = list(iter_frames(path))
    assert len(window) == 4 and all(
        np.array_equal(a, b) for a, b in zip(window, everything[5:9], strict=True)
    )

    picked = read_frames(path, [19, 0, 7, 7])
    assert [p.shape for p in picked] == [(48, 64, 3)] * 4
    for got, index in zip(picked, [19, 0, 7, 7], strict=True):
        assert np.array_equal(got, everything[index])
    with pytest.raises(ValueError, match="frame 20 does not exist"):
        read_frames(path, [3, 20])


def test_iterating_does_not_accumulate_frames(make_clip):
    path = make_clip("long.mp4", frames=60, size=(160, 120))
    frame_bytes = 160 * 120 * 3
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_frames(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 60
    assert peak < 10 * frame_bytes  # a handful of frames alive at once, not all 60


# --- writing ----------------------------------------------------------------------------------------------


def test_round_trip_keeps_count_fps_and_pixels(tmp_path):
    frames = [pattern_frame(i, 96, 64) for i in range(20)]
    path = tmp_path / "out.mp4"
    assert write_video(path, frames, NTSC, crf=18) == 20

    info = probe_video(path, exact=True)
    assert (info.num_frames, info.fps, info.width, info.height) == (20, NTSC, 96, 64)
    back = list(iter_frames(path))
    assert len(back) == 20
    assert min(psnr(a, b) for a, b in zip(frames, back, strict=True)) > 30


def test_writer_colours_survive_a_round_trip(tmp_path):
    # A saturated colour comes back within a few levels only if writer and reader agree on the BT.709 matrix.
    flat = np.empty((32, 32, 3), np.uint8)
    flat[:] = (200, 40, 30)
    write_video(tmp_path / "flat.mp4", [flat] * 3, 24)
    back = next(iter_frames(tmp_path / "flat.mp4"))
    assert np.abs(back[8:24, 8:24].astype(int) - flat[8:24, 8:24]).max() <= 4


@pytest.mark.parametrize("fps", [Fraction(24), NTSC, Fraction(24000, 1001), Fraction(15, 2)])
def test_writer_keeps_fps_exact(tmp_path, fps):
    path = tmp_path / "f.mp4"
    write_video(path, (pattern_frame(i, 32, 32) for i in range(7)), fps)
    info = probe_video(path, exact=True)
    assert info.fps == fps and info.num_frames == 7


def test_writer_takes_float_fps_as_the_rate_it_stands_for(tmp_path):
    assert VideoWriter(tmp_path / "a.mp4", 29.97, 32, 32).fps == NTSC
    assert VideoWriter(tmp_path / "b.mp4", 23.976, 32, 32).fps == Fraction(24000, 1001)
    assert VideoWriter(tmp_path / "c.mp4", 25.0, 32, 32).fps == 25
    assert VideoWriter(tmp_path / "d.mp4", "30000/1001", 32, 32).fps == NTSC
    for bad in (0, -24, float("nan"), "fast"):
        with pytest.raises(ValueError, match="fps"):
            VideoWriter(tmp_path / "e.mp4", bad, 32, 32)
    assert os.listdir(tmp_path) == []  # nothing is created before the writer is entered


def test_writer_rejects_odd_sizes_and_wrong_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", 24, 63, 48)
    with pytest.raises(ValueError, match="shape"):
        with VideoWriter(tmp_path / "bad.mp4", 24, 64, 48) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            writer.write(np.zeros((48, 64), np.uint8))
    assert os.listdir(tmp_path) == []


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(target, 24, 32, 32) as writer:
            for i in range(5):
                writer.write(pattern_frame(i, 32, 32))
            assert not target.exists()  # frames go to a temporary file until the end
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []

    target.write_bytes(b"previous output")
    with pytest.raises(RuntimeError):
        with VideoWriter(target, 24, 32, 32) as writer:
            writer.write(pattern_frame(0, 32, 32))
            raise RuntimeError("boom")
    assert target.read_bytes() == b"previous output"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_writer_refuses_containers_without_h264(tmp_path):
    with pytest.raises(UserError, match="H.264"):
        with VideoWriter(tmp_path / "x.webm", 24, 32, 32) as writer:
            writer.write(pattern_frame(0, 32, 32))
    assert os.listdir(tmp_path) == []


# --- audio carry-over -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_name", "audio", "reencode", "expected_codec"),
    [
        ("aac.mp4", "aac", False, "aac"),  # stream copy
        ("mp3.mp4", "mp3", False, "mp3"),  # stream copy
        ("aac2.mp4", "aac", True, "aac"),  # forced re-encode
        ("pcm.mov", "pcm_s16le", False, "aac"),  # PCM does not belong in MP4: re-encoded
        ("opus.mkv", "opus", False, "aac"),
    ],
)
def test_audio_is_carried_in_sync_and_trimmed(
    make_clip, require_encoder, tmp_path, source_name, audio, reencode, expected_codec
):
    require_encoder("libmp3lame" if audio == "mp3" else audio)
    source = make_clip(source_name, frames=45, fps=NTSC, audio=audio, audio_rate=48000, beep_at=0.5)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, NTSC, 64, 48, audio_from=source, reencode_audio=reencode) as writer:
        for i in range(30):  # a shorter video than the source: the audio is cut to it
            writer.write(pattern_frame(i, 64, 48))

    facts = audio_stream_facts(out)
    video_seconds = float(30 / NTSC)
    assert (facts["codec"], facts["channels"], facts["rate"]) == (expected_codec, 2, 48000)
    assert facts["start"] == 0.0
    # Copies end within one packet (1152 samples at most here) after the video; re-encodes end with it.
    slack = 1152 / 48000 if expected_codec == audio and not reencode else 2 / 48000
    assert video_seconds - 1e-3 <= facts["duration"] <= video_seconds + slack + 1e-3
    samples, rate, first = decode_audio(out)
    assert onset_seconds(samples, rate, first) == pytest.approx(0.5, abs=0.003)
    assert probe_video(out, exact=True).num_frames == 30


@pytest.mark.parametrize("reencode", [False, True])
def test_audio_skip_starts_the_sound_later_in_the_source(make_clip, tmp_path, reencode):
    source = make_clip("src.mp4", frames=45, fps=NTSC, audio="aac", audio_rate=48000, beep_at=0.5)
    out = tmp_path / "out.mp4"
    write_video(
        out,
        (pattern_frame(i, 64, 48) for i in range(20)),
        NTSC,
        audio_from=source,
        audio_skip=0.2,
        reencode_audio=reencode,
    )
    samples, rate, first = decode_audio(out)
    assert onset_seconds(samples, rate, first) == pytest.approx(0.3, abs=0.003)


def test_source_without_audio_gives_silent_output(make_clip, tmp_path):
    source = make_clip("mute.mp4", frames=5)
    write_video(tmp_path / "out.mp4", (pattern_frame(i, 32, 32) for i in range(5)), 24, audio_from=source)
    assert not probe_video(tmp_path / "out.mp4").has_audio


@pytest.mark.parametrize("reencode", [False, True])
def test_surround_audio_from_big_buck_bunny(bigbuckbunny, tmp_path, reencode):
    info = probe_video(bigbuckbunny)
    assert (info.audio_codec, info.audio_channels, info.fps) == ("aac", 6, 25)
    out = tmp_path / "bbb.mp4"
    write_video(
        out,
        (pattern_frame(i, 64, 36) for i in range(13)),
        info.fps,
        audio_from=bigbuckbunny,
        reencode_audio=reencode,
    )

    facts = audio_stream_facts(out)
    assert (facts["codec"], facts["channels"], facts["layout"]) == ("aac", 6, info.audio_layout)
    video_seconds = 13 / 25
    assert video_seconds - 1e-3 <= facts["duration"] <= video_seconds + 1024 / 48000 + 1e-3
    # The carried sound lines up with the source's: best cross-correlation at lag 0.
    ours, rate, _ = decode_audio(out)
    theirs, _, _ = decode_audio(bigbuckbunny, max_seconds=0.6)
    n = int(0.4 * rate)
    a, b = ours[:n].mean(axis=1), theirs[:n].mean(axis=1)
    lags = range(-200, 201)
    scores = [np.dot(a[200:-200], np.roll(b, lag)[200:-200]) for lag in lags]
    assert list(lags)[int(np.argmax(scores))] == 0


# --- rotation ---------------------------------------------------------------------------------------------


def _orientation_errors(frame: np.ndarray, stored: np.ndarray) -> dict[tuple[int, bool], float]:
    errors = {}
    for rotation in (0, 90, 180, 270):
        for mirrored in (False, True):
            candidate = apply_orientation(stored, rotation, mirrored)
            if candidate.shape == frame.shape:
                errors[(rotation, mirrored)] = float(np.abs(candidate.astype(int) - frame).mean())
    return errors


@pytest.mark.parametrize(
    ("written", "hflip", "expected"),
    [(90, False, 90), (-90, False, 270), (180, False, 180), (0, True, 0), (90, True, 90)],
)
def test_display_matrix_turns_frames_upright(make_clip, written, hflip, expected):
    # PyAV writes the matrix with a counter-clockwise angle, mirrored afterwards when hflip is set.
    path = make_clip(f"r{written}{hflip}.mp4", frames=3, size=(64, 48), rotation=written, hflip=hflip)
    info = probe_video(path)
    assert (info.rotation, info.mirrored) == (expected, hflip)
    upright = (48, 64) if expected % 180 else (64, 48)
    assert (info.width, info.height) == upright
    frame = next(iter_frames(path))
    assert frame.shape == (upright[1], upright[0], 3) and frame.flags.c_contiguous
    errors = _orientation_errors(frame, pattern_frame(0, 64, 48))
    assert min(errors, key=errors.get) == (expected, hflip) and errors[(expected, hflip)] < 8
    assert read_frames(path, [1])[0].shape == frame.shape
    if not hflip:  # agrees with FFmpeg's own reading of the angle (which ignores mirroring)
        with av.open(str(path)) as container:
            assert next(container.decode(video=0)).rotation % 360 == expected


def test_legacy_rotate_tag_is_honoured(make_clip):
    path = make_clip("tag.mkv", frames=2, rotate_tag=90)  # 90 degrees clockwise
    info = probe_video(path)
    assert (info.rotation, info.width, info.height) == (270, 48, 64)
    errors = _orientation_errors(next(iter_frames(path)), pattern_frame(0, 64, 48))
    assert min(errors, key=errors.get) == (270, False)


def test_orientation_pure_functions():
    one = 1 << 16
    assert orientation_from_display_matrix([one, 0, 0, 0, one, 0, 0, 0, 1 << 30]) == (0, False)
    assert orientation_from_display_matrix([0, -one, 0, one, 0, 0, 0, 0, 1 << 30]) == (90, False)
    assert orientation_from_display_matrix([0, one, 0, -one, 0, 0, 0, 0, 1 << 30]) == (270, False)
    assert orientation_from_display_matrix([-one, 0, 0, 0, one, 0, 0, 0, 1 << 30]) == (0, True)
    assert orientation_from_rotate_tag("90") == (270, False)
    assert orientation_from_rotate_tag("-90") == (90, False)
    assert orientation_from_rotate_tag("180") == (180, False)
    assert orientation_from_rotate_tag("sideways") == (0, False)
    frame = np.arange(6).reshape(2, 3)
    assert np.array_equal(apply_orientation(frame, 90, False), [[2, 5], [1, 4], [0, 3]])
    assert np.array_equal(apply_orientation(frame, 0, True), [[2, 1, 0], [5, 4, 3]])


# --- bad input --------------------------------------------------------------------------------------------


def _one_line_user_error(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def test_bad_inputs_raise_one_line_user_errors(tmp_path, make_clip):
    missing = tmp_path / "missing.mp4"
    assert "not found" in _one_line_user_error(lambda: probe_video(missing))
    assert "not found" in _one_line_user_error(lambda: iter_frames(missing))
    assert "not found" in _one_line_user_error(lambda: open_video_source(missing))

    garbage = write_garbage(tmp_path / "garbage.mp4")
    assert "cannot read" in _one_line_user_error(lambda: probe_video(garbage))
    assert "cannot read" in _one_line_user_error(lambda: read_frames(garbage, [0]))

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty" in _one_line_user_error(lambda: probe_video(empty))

    audio_only = make_test_video(tmp_path / "sound.m4a", video=False, audio="aac", frames=12)
    assert "no video stream" in _one_line_user_error(lambda: probe_video(audio_only))

    good = make_clip("good.mp4", frames=30)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _one_line_user_error(lambda: probe_video(truncated))

    assert "folder" in _one_line_user_error(lambda: probe_video(tmp_path))


def test_a_video_stream_without_frames_is_a_user_error(tmp_path):
    path = tmp_path / "zero.avi"  # AVI keeps an empty video track (MP4 drops it, Matroska ends early)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()  # header and an empty track, but no frames
    assert "no decodable video frames" in _one_line_user_error(lambda: probe_video(path))


def test_writer_with_unreadable_audio_source_leaves_nothing(tmp_path):
    garbage = write_garbage(tmp_path / "in.mp4")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _one_line_user_error(
        lambda: write_video(out_dir / "o.mp4", [pattern_frame(0, 32, 32)], 24, audio_from=garbage)
    )
    assert os.listdir(out_dir) == []


def test_writer_gives_the_same_file_whatever_the_pace_of_frames(tmp_path):
    """The same frames, fed at an uneven pace (random amounts of work between frames, as the pipeline's windows do),
    give byte-identical files: with two x264 threads they did not (the CI failure of the two-process test)."""
    rng = np.random.default_rng(0)
    frames = [np.clip(pattern_frame(i, 96, 48).astype(int) + rng.integers(-40, 40, (48, 96, 3)), 0, 255)
              .astype(np.uint8) for i in range(60)]
    contents = set()
    for run in range(3):
        work = np.random.default_rng(run)
        with VideoWriter(tmp_path / f"out{run}.mp4", 24, 96, 48) as writer:
            for frame in frames:
                for _ in range(int(work.integers(0, 8))):  # uneven CPU work between frames, no sleeping
                    np.linalg.svd(work.random((200, 200)))
                writer.write(frame)
        contents.add((tmp_path / f"out{run}.mp4").read_bytes())
    assert len(contents) == 1


# --- reading from far into a file: seeking -------------------------------------------------------------------


def _short_gop_clip(path, frames: int = 300) -> None:
    """An MP4 with a key frame every 12 frames and B-frames (packets out of presentation order), every frame
    different."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "12", "bf": "3", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, :] = (i % 256, (i * 7) % 256, (i // 3) % 256)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("start, end", [(100, 110), (251, 262), (299, None), (137, 300)])
def test_a_range_far_into_a_file_is_read_by_seeking_and_gives_the_same_frames(tmp_path, monkeypatch, start, end):
    import m3ddm.io.video as video

    path = tmp_path / "gop.mp4"
    _short_gop_clip(path)
    every = list(iter_frames(path))
    decoded = []
    plain = video._decoded_frames

    def counted(*args):
        for frame in plain(*args):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video, "_decoded_frames", counted)
    got = list(iter_frames(path, start, end))
    assert len(got) == len(every[start:end])
    assert all(np.array_equal(a, b) for a, b in zip(got, every[start:end], strict=True))
    assert len(decoded) < len(got) + 2 * 12, "decoding starts at the key frame before the range, not at frame 0"
    picked = [min(start + 5, len(every) - 1), start]  # any order, one pass
    assert all(np.array_equal(a, every[i]) for a, i in zip(read_frames(path, picked), picked, strict=True))


def test_a_frame_past_the_end_far_into_a_file_is_reported_with_the_true_count(tmp_path):
    path = tmp_path / "gop.mp4"
    _short_gop_clip(path, frames=150)
    with pytest.raises(ValueError, match="has 150 frames; frame 400 does not exist"):
        read_frames(path, [400])  # (the timestamp pass reads every packet and finds no frame 400)
    assert np.array_equal(read_frames(path, [120])[0], list(iter_frames(path))[120])
    assert list(iter_frames(path, 200, 210)) == []


def test_sample_videos_take_odd_sizes(tmp_path):
    # libx264 refuses 4:2:0 at an odd width or height; users' files come in such sizes, so the tests need them too
    path = make_test_video(tmp_path / "odd.mp4", frames=3, size=(97, 61))
    info = probe_video(path, exact=True)
    assert (info.width, info.height, info.num_frames) == (97, 61, 3)
    assert make_test_video(tmp_path / "even.mp4", frames=1, size=(64, 48)).is_file()
    with av.open(str(tmp_path / "even.mp4")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"  # players' format where it can be
