"""Test-only media helpers: unreadable files, PSNR, audio decoding and onsets, variable-frame-rate clips, a pan.

Importable from any test as ``from media_checks import ...`` (``tests`` is on pytest's ``pythonpath``). The sample
clips themselves live in the package (``m3ddm.io.samples``), which the app and the benchmarks use too.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from m3ddm.io.samples import AUDIO_FORMATS, pattern_frame, write_audio_chunk
from m3ddm.utils.pixels import psnr as pixel_psnr


def write_garbage(path: str | os.PathLike, num_bytes: int = 4096, seed: int = 0) -> Path:
    """Random bytes under a video-looking name: an unreadable file."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, num_bytes, dtype=np.uint8).tobytes())
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images or videos (inf when equal)."""
    return pixel_psnr(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def decode_audio(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int, float]:
    """(samples x channels float32, sample rate, time of the first decoded sample) of a file's first audio.

    ``max_seconds`` stops decoding once that much audio has been read.
    """
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        to_float = av.AudioResampler(format="flt", layout=stream.codec_context.layout, rate=rate)
        chunks, first = [], None
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.pts * frame.time_base)
            for converted in to_float.resample(frame):
                chunks.append(converted.to_ndarray().reshape(-1, stream.codec_context.channels))
            if max_seconds is not None and sum(len(c) for c in chunks) >= max_seconds * rate:
                break
    return np.concatenate(chunks), rate, first or 0.0


def audio_stream_facts(path: Path) -> dict:
    """Codec, channels, layout, rate, and duration in seconds of a file's first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        context = stream.codec_context
        return {
            "codec": context.codec.canonical_name,
            "channels": context.channels,
            "layout": context.layout.name,
            "rate": context.sample_rate,
            "duration": float(stream.duration * stream.time_base) if stream.duration else None,
            "start": float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0,
        }


def onset_seconds(samples: np.ndarray, rate: int, first: float, threshold: float = 0.1) -> float:
    """Time of the first sample louder than ``threshold`` (the beep written by make_test_video)."""
    loud = np.flatnonzero(np.abs(samples[:, 0]) > threshold)
    assert loud.size, "no beep found in the audio"
    return first + loud[0] / rate


def make_vfr_video(
    path: str | os.PathLike,
    times: list[float],
    end: float,
    size: tuple[int, int] = (64, 48),
    time_base: Fraction = Fraction(1, 1000),
    audio: str | None = None,
    audio_rate: int = 48000,
    beep_at: float | None = None,
) -> Path:
    """A variable-frame-rate clip: frame ``i`` at ``times[i]`` seconds, the video ending at ``end``.

    Matroska (the name's extension picks the container) stores each timestamp as it is, in ``time_base``
    ticks. ``audio``/``beep_at`` add a tone track lasting until ``end``, as in ``make_test_video``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    ticks = [round(Fraction(t) / time_base) for t in times]
    if any(b <= a for a, b in zip(ticks, ticks[1:], strict=False)):
        raise ValueError("frame times must strictly increase (in ticks of the time base)")
    with av.open(str(path), "w") as container:
        vstream = container.add_stream("libx264", rate=round(len(times) / end) or 1, options={"preset": "veryfast"})
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.codec_context.time_base = time_base
        astream = None
        if audio:
            astream = container.add_stream(audio, rate=audio_rate, layout="stereo")
            if audio in AUDIO_FORMATS:
                astream.format = AUDIO_FORMATS[audio]
        total = int(end * audio_rate)
        position = 0
        end_tick = round(Fraction(end) / time_base)
        shown_for = {t: b - t for t, b in zip(ticks, [*ticks[1:], end_tick], strict=True)}
        for i, tick in enumerate(ticks):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height), format="rgb24")
            frame.pts, frame.time_base = tick, time_base
            _mux_shown_for(container, vstream.encode(frame), shown_for)
            shown_until = times[i + 1] if i + 1 < len(times) else end  # interleave the sound up to the next frame
            until = min(int(shown_until * audio_rate), total)
            while astream is not None and position < until:
                position = write_audio_chunk(container, astream, position, total, audio_rate, beep_at)
        while astream is not None and position < total:
            position = write_audio_chunk(container, astream, position, total, audio_rate, beep_at)
        _mux_shown_for(container, vstream.encode(None), shown_for)
        if astream is not None:
            container.mux(astream.encode(None))
    return path


def _mux_shown_for(container, packets, shown_for: dict[int, int]) -> None:
    # The encoder's packet durations are a constant guess; Matroska stores each block's own display time.
    for packet in packets:
        packet.duration = shown_for.get(packet.pts, packet.duration)
        container.mux(packet)


def horizontal_pan(num_frames: int = 16, height: int = 96, width: int = 96, speed: int = 3) -> np.ndarray:
    """A camera panning right over a natural photo (scikit-image's cat), ``speed`` pixels per frame."""
    import cv2
    import skimage.data

    photo = cv2.resize(skimage.data.chelsea(), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert photo.shape[1] >= 10 + speed * num_frames + width, "photo too small for this pan"
    return np.stack([photo[20 : 20 + height, 10 + speed * t : 10 + speed * t + width] for t in range(num_frames)])
