"""Synthetic sample clips made on the fly: the web app's example clips, the benchmarks' inputs and the tests' media.

A smooth moving pattern, optionally with a tone track and a rotation tag, written with PyAV: nothing is downloaded.
The pattern is smooth (low frequencies only) so lossy codecs keep it well, and it moves, so frames differ.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# The encoder used when a test asks for a container without naming a codec.
DEFAULT_CODECS = {
    ".mp4": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".avi": "mpeg4",
    ".webm": "libvpx-vp9",
    ".m4a": None,
}
# Sample format each audio encoder accepts natively (PyAV converts our float samples to it).
AUDIO_FORMATS = {
    "aac": "fltp",
    "mp3": "fltp",
    "libmp3lame": "fltp",
    "ac3": "fltp",
    "opus": "flt",
    "libopus": "flt",
    "pcm_s16le": "s16",
    "flac": "s16",
    "vorbis": "fltp",
}


def encoder_available(name: str) -> bool:
    """True when the bundled FFmpeg has an encoder called ``name``."""
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of a smooth, moving RGB pattern (uint8, height x width x 3)."""
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    t = index * 0.15
    frame = np.empty((height, width, 3), np.float32)
    frame[..., 0] = 0.5 + 0.4 * np.sin(2 * np.pi * (x / width) + t)
    frame[..., 1] = 0.5 + 0.4 * np.cos(2 * np.pi * (y / height) - 0.7 * t)
    frame[..., 2] = 0.5 + 0.4 * np.sin(2 * np.pi * ((x + y) / (width + height)) + 1.3 * t)
    return (frame * 255).round().astype(np.uint8)


def tone(
    start_sample: int, num_samples: int, rate: int, channels: int, beep_at: float | None = None
) -> np.ndarray:
    """A sine tone per channel (a different pitch on each), float32, shape (channels, samples).

    With ``beep_at`` (seconds) the track is silent except a 0.1 s tone from that time: an onset that
    tests can locate to check audio sync.
    """
    t = (start_sample + np.arange(num_samples, dtype=np.float64)) / rate
    freqs = 220.0 * (1 + np.arange(channels))[:, None]
    wave = 0.3 * np.sin(2 * np.pi * freqs * t[None, :])
    if beep_at is not None:
        wave *= ((t >= beep_at) & (t < beep_at + 0.1))[None, :]
    return wave.astype(np.float32)


def _pick_pix_fmt(codec_name: str, width: int, height: int) -> str:
    formats = [f.name for f in (av.codec.Codec(codec_name, "w").video_formats or [])]
    # 4:2:0 halves the chroma planes, which libx264 refuses for an odd width or height; 4:4:4 takes any size
    odd = width % 2 or height % 2
    for preferred in (("yuv444p", "rgb24") if odd else ("yuv420p", "yuvj420p", "rgb24")):
        if not formats or preferred in formats:
            return preferred
    return formats[0]


def make_test_video(
    path: str | os.PathLike,
    frames: int = 24,
    size: tuple[int, int] = (64, 48),
    fps: Fraction | int | str = 24,
    codec: str | None = None,
    audio: str | None = None,
    audio_channels: int = 2,
    audio_rate: int = 44100,
    audio_layout: str | None = None,
    rotation: int = 0,
    hflip: bool = False,
    rotate_tag: int | None = None,
    video: bool = True,
    beep_at: float | None = None,
) -> Path:
    """Write a small synthetic clip and return its path.

    ``size`` is (width, height) of the stored frames; ``fps`` is exact (a Fraction such as
    ``Fraction(30000, 1001)`` works). ``audio`` names an audio encoder ("aac", "mp3", "ac3", ...)
    for a tone track as long as the video. ``rotation``/``hflip`` write a display matrix (counter-
    clockwise degrees, as PyAV reads them back); ``rotate_tag`` writes the legacy ``rotate`` stream
    tag instead (only Matroska keeps arbitrary tags). ``video=False`` writes an audio-only file.
    ``beep_at`` makes the audio silent except a short tone at that time (see ``tone``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = Fraction(fps)
    width, height = size
    if audio == "mp3" and not encoder_available("mp3"):
        audio = "libmp3lame"
    duration = Fraction(frames) / fps
    with av.open(str(path), "w") as container:
        vstream = None
        if video:
            codec = codec or DEFAULT_CODECS.get(path.suffix.lower()) or "libx264"
            # veryfast keeps B-frames (readers meet reordered timestamps) and encodes several times quicker.
            options = {"preset": "veryfast"} if codec == "libx264" else None
            vstream = container.add_stream(codec, rate=fps, options=options)
            vstream.width, vstream.height = width, height
            vstream.pix_fmt = _pick_pix_fmt(codec, width, height)
            vstream.codec_context.time_base = 1 / fps
            if rotation or hflip:
                vstream.set_display_rotation(rotation, hflip=hflip)
            if rotate_tag is not None:
                vstream.metadata["rotate"] = str(rotate_tag)
        astream = None
        if audio:
            layout = audio_layout or {1: "mono", 2: "stereo", 6: "5.1"}.get(audio_channels, "stereo")
            astream = container.add_stream(audio, rate=audio_rate, layout=layout)
            if audio in AUDIO_FORMATS:
                astream.format = AUDIO_FORMATS[audio]
        timing = (fps, audio_rate, duration, beep_at)
        _write_streams(container, vstream, astream, frames, width, height, timing)
    return path


def _write_streams(container, vstream, astream, frames, width, height, timing) -> None:
    """Interleave video frames and 1024-sample tone chunks by time, then flush both encoders."""
    fps, audio_rate, duration, beep_at = timing
    total = int(duration * audio_rate)
    position = 0
    for i in range(frames if vstream is not None else 0):
        frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height), format="rgb24")
        frame.pts, frame.time_base = i, 1 / fps
        container.mux(vstream.encode(frame))
        frame_end = min(int(Fraction(i + 1) / fps * audio_rate), total)
        while astream is not None and position < frame_end:
            position = write_audio_chunk(container, astream, position, total, audio_rate, beep_at)
    while astream is not None and position < total:
        position = write_audio_chunk(container, astream, position, total, audio_rate, beep_at)
    if vstream is not None:
        container.mux(vstream.encode(None))
    if astream is not None:
        container.mux(astream.encode(None))


def write_audio_chunk(container, astream, start: int, total: int, rate: int, beep_at: float | None) -> int:
    """Encode and mux the next (up to) 1024 tone samples from ``start``; returns the position after them."""
    n = min(1024, total - start)
    layout = astream.codec_context.layout
    samples = tone(start, n, rate, layout.nb_channels, beep_at)
    # Packed float frames hold every channel in one plane (PyAV's planar path breaks above 8 planes).
    frame = av.AudioFrame.from_ndarray(samples.T.reshape(1, -1).copy(), format="flt", layout=layout.name)
    frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
    container.mux(astream.encode(frame))
    return start + n
