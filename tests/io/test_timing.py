"""Exact timing: variable-frame-rate videos keep their timestamps and length; time ranges of a source."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from m3ddm.errors import UserError
from m3ddm.io import FrameTiming, VideoWriter, iter_frames, open_video_source, probe_video, write_video
from m3ddm.io.samples import pattern_frame
from m3ddm.io.timing import detect_timing
from media_checks import decode_audio, make_vfr_video, onset_seconds

TIMES = [0.0, 0.04, 0.2, 0.23, 0.9, 0.95, 1.0, 1.7, 1.733, 1.766, 2.5, 2.6]
END = 2.7


def decoded_times(path) -> tuple[list[float], float]:
    """(each frame's time after the first, the container's duration) as a player reads them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = [frame.pts * stream.time_base for frame in container.decode(stream)]
        return [float(s - stamps[0]) for s in stamps], container.duration / av.time_base


def test_detect_timing_tells_constant_from_variable_rates():
    tb = Fraction(1, 1000)
    # Matroska's 1 ms ticks put 24000/1001 fps frames half a tick off: still constant.
    ntsc = [round(i * 1001 / 24) for i in range(50)]
    assert detect_timing(ntsc, tb, [Fraction(24000, 1001)]) == (Fraction(24000, 1001), None)
    # The container's first rate may be wrong while another of its rates fits.
    assert detect_timing([40 * i for i in range(10)], tb, [Fraction(30), Fraction(25)])[0] == 25
    rate, timing = detect_timing([100, 140, 300, 1000], tb, [Fraction(25)], stream_end=1100)
    assert rate is None and timing.pts == (0, 40, 200, 900) and timing.end == 1000
    assert timing.duration == 1 and timing.nominal_fps == 4
    # No usable end from the container (or one before the last frame): the last gap is repeated.
    assert detect_timing([0, 40, 300], tb, [Fraction(25)], stream_end=200)[1].end == 560
    # Frames without timestamps: nothing to keep, the container's rate stands.
    assert detect_timing([0, None, 80], tb, [Fraction(25)]) == (Fraction(25), None)
    # Repeated or reordered timestamps of damaged files still give increasing times.
    assert detect_timing([0, 40, 40, 30, 500], tb, [Fraction(25)])[1].pts == (0, 40, 41, 42, 500)


def test_frame_timing_windows_and_lookups():
    timing = FrameTiming(Fraction(1, 1000), (0, 40, 200, 230, 900), 950)
    assert timing.seconds(2) == Fraction(1, 5) and timing.seconds(5) == Fraction(19, 20)
    assert timing.index_at(Fraction(1, 5)) == 2 and timing.index_at(Fraction(21, 100)) == 3
    assert timing.index_at(1) == 5
    part = timing.window(1, 4)
    assert part.pts == (0, 160, 190) and part.end == 860
    assert timing.window(3, 5).end == 720
    with pytest.raises(ValueError):
        FrameTiming(Fraction(1, 1000), (0, 40, 40), 100)


def test_variable_frame_rate_video_keeps_its_timestamps_and_length(tmp_path):
    source = make_vfr_video(tmp_path / "vfr.mkv", TIMES, END)
    info = probe_video(source, exact=True)
    assert info.timing is not None and info.num_frames == len(TIMES)
    assert info.duration == pytest.approx(END)
    for name in ("out.mp4", "out.mkv", "out.mov"):
        out = tmp_path / name
        write_video(out, iter_frames(source), info.fps, timing=info.timing)
        times, duration = decoded_times(out)
        assert np.abs(np.array(times) - TIMES).max() <= 1e-3 + 1e-9, name  # within one tick (1 ms)
        assert duration == pytest.approx(END, abs=1e-3), name
        assert probe_video(out, exact=True).timing is not None


def test_constant_rate_video_has_no_timing_and_writes_as_before(make_clip, tmp_path):
    path = make_clip("cfr.mkv", frames=30, fps=Fraction(24000, 1001))
    info = probe_video(path, exact=True)
    assert info.timing is None and info.fps == Fraction(24000, 1001)
    assert probe_video(path).timing is None  # a quick probe reads no timestamps


def test_variable_frame_rate_audio_stays_in_sync(tmp_path):
    source = make_vfr_video(tmp_path / "vfr.mkv", TIMES, END, audio="aac", beep_at=1.2)
    info = probe_video(source, exact=True)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, 64, 48, audio_from=source, timing=info.timing) as writer:
        for frame in iter_frames(source):
            writer.write(frame)
    samples, rate, first = decode_audio(out)
    assert onset_seconds(samples, rate, first) == pytest.approx(1.2, abs=0.003)
    assert len(samples) / rate == pytest.approx(END, abs=0.03)  # cut at the video's end, not the last frame


def test_writer_refuses_more_frames_than_timestamps(tmp_path):
    timing = FrameTiming(Fraction(1, 1000), (0, 40), 80)
    with pytest.raises(ValueError, match="no timestamp"):
        with VideoWriter(tmp_path / "o.mp4", 25, 32, 32, timing=timing) as writer:
            for i in range(3):
                writer.write(pattern_frame(i, 32, 32))
    assert not (tmp_path / "o.mp4").exists()


def test_trimmed_source_yields_the_frames_of_its_range(make_clip, tmp_path):
    path = make_clip("clip.mp4", frames=40, fps=20)
    source = open_video_source(path)
    everything = list(source.iter_frames())
    part = source.trimmed(Fraction(1, 2), Fraction(3, 2))  # frames 10..29 (t = 0.5 up to before 1.5)
    assert len(part) == 20 and part.first_frame == 10 and part.offset_seconds == Fraction(1, 2)
    got = list(part.iter_frames())
    assert len(got) == 20 and all(np.array_equal(a, b) for a, b in zip(got, everything[10:30], strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(part.read([0, 19]), [everything[10], everything[29]],
                                                    strict=True))
    with pytest.raises(ValueError):
        part.read([20])
    assert len(source.trimmed(end=Fraction(1, 4))) == 5
    assert len(source.trimmed(start=Fraction(39, 20))) == 1  # the last frame, at 1.95 s
    assert len(source.trimmed(end=100)) == 40  # an end past the video is its end
    nested = part.trimmed(Fraction(1, 4))
    assert nested.first_frame == 15 and nested.offset_seconds == Fraction(3, 4) and len(nested) == 15
    for start, end in ((5, None), (Fraction(1), Fraction(1)), (-1, None)):
        with pytest.raises(UserError):
            source.trimmed(start, end)


def test_trimmed_variable_frame_rate_source_rebases_its_timestamps(tmp_path):
    source = open_video_source(make_vfr_video(tmp_path / "vfr.mkv", TIMES, END))
    part = source.trimmed(Fraction(9, 10), Fraction(2))  # 0.9, 0.95, 1.0, 1.7, 1.733, 1.766
    assert len(part) == 6 and part.offset_seconds == Fraction(9, 10)
    assert part.info.timing.pts == (0, 50, 100, 800, 833, 866) and part.info.timing.end == 1600
    assert part.info.duration == pytest.approx(1.6)


def test_frame_folder_keeps_its_rate(tmp_path):
    from m3ddm.io import write_frame_folder

    folder = tmp_path / "frames"
    write_frame_folder(folder, (pattern_frame(i, 32, 32) for i in range(3)), fps=Fraction(2997, 125))
    assert (folder / "fps.txt").read_text().strip() == "2997/125"
    assert open_video_source(folder).info.fps == Fraction(2997, 125)
    assert len(open_video_source(folder).trimmed(Fraction(1, 24))) == 2
