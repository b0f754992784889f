"""Carry a source file's audio into a video being written: stream copy when the codec fits, else AAC.

The writer tells the carrier how far the video has got (``advance``) so audio packets are interleaved
with video as it is written, and the final video duration at the end (``finish``), where the audio is
trimmed. Source time ``offset`` (the source's first video frame, plus any skip) becomes output time 0,
so the sound stays in sync with the pictures.

Trimming precision: a stream copy keeps whole packets (it can end up to one packet, ~21 ms for AAC at
48 kHz, after the video, and starts with one extra packet of decoder pre-roll that the container's edit
list hides); re-encoding trims to the sample.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Audio codecs each output container family takes as they are (widely playable combinations only).
_COPYABLE = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"},
    "matroska": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le"},
}
# Sample rates and channel layouts FFmpeg's native AAC encoder accepts.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_AAC_LAYOUTS = {"mono", "stereo", "2.1", "3.0", "4.0", "quad", "5.0", "5.0(side)", "5.1", "5.1(side)", "6.1"}
# Timestamp jumps smaller than this are jitter (e.g. Matroska's 1 ms clock); larger ones are real gaps.
_GAP_SECONDS = 0.1


def first_audio_stream(container) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def can_copy_audio(codec: str, output_format: str) -> bool:
    """Whether ``codec`` audio may be stream-copied into a container of ``output_format`` (FFmpeg name)."""
    family = "mp4" if output_format in ("mp4", "ipod", "3gp") else output_format
    return codec in _COPYABLE.get(family, set())


class AudioCarrier:
    """Moves one source's audio into an output container; see the module docstring."""

    def __init__(self, source, in_stream, out_stream, offset: float) -> None:
        self._source = source
        self._in = in_stream
        self._out = out_stream
        self._offset = Fraction(offset).limit_denominator(10**9)

    @classmethod
    def open(
        cls, output, path: str | os.PathLike, offset: float, reencode: bool = False
    ) -> AudioCarrier | None:
        """A carrier from ``path``'s first audio stream into ``output``, or None when it has no audio.

        ``reencode`` forces AAC even when the codec could be copied.
        """
        source = av.open(str(Path(path)), "r")
        in_stream = first_audio_stream(source)
        if in_stream is None:
            source.close()
            return None
        codec = in_stream.codec_context.codec.canonical_name
        try:
            if (
                not reencode
                and can_copy_audio(codec, output.format.name)
                and codec in output.supported_codecs
            ):
                return _CopyCarrier(source, in_stream, output.add_stream_from_template(in_stream), offset)
            return _AacCarrier(source, in_stream, output, offset)
        except BaseException:
            source.close()
            raise

    def advance(self, until: float) -> None:
        """Mux audio that starts before output time ``until`` (seconds)."""
        raise NotImplementedError

    def finish(self, end: float) -> None:
        """Mux the audio up to output time ``end``, flush, and close the source."""
        raise NotImplementedError

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._source.close()


class _CopyCarrier(AudioCarrier):
    def __init__(self, source, in_stream, out_stream, offset: float) -> None:
        super().__init__(source, in_stream, out_stream, offset)
        self._shift = round(self._offset / in_stream.time_base)  # offset in source ticks
        self._packets = self._timed_packets()
        self._pending = next(self._packets, None)

    def _timed_packets(self) -> Iterator[tuple[float, av.Packet]]:
        """(output start time, packet), from one packet of pre-roll before output time 0 onwards."""
        previous = None
        started = False
        for packet in self._source.demux(self._in):
            if packet.pts is None and packet.dts is None:
                continue  # the demuxer's end-of-stream marker
            pts = packet.pts if packet.pts is not None else packet.dts
            start = float((pts - self._shift) * self._in.time_base)
            end = start + float((packet.duration or 0) * self._in.time_base)
            if not started and end <= 0:
                previous = (start, packet)  # candidate pre-roll: lets the decoder settle before time 0
                continue
            if not started and previous is not None:
                yield previous
            started = True
            yield start, packet

    def _mux(self, packet: av.Packet) -> None:
        if packet.pts is not None:
            packet.pts -= self._shift
        if packet.dts is not None:
            packet.dts -= self._shift
        packet.stream = self._out
        self._out.container.mux(packet)

    def advance(self, until: float) -> None:
        while self._pending is not None and self._pending[0] < until:
            self._mux(self._pending[1])
            self._pending = next(self._packets, None)

    def finish(self, end: float) -> None:
        self.advance(end)
        self._pending = None
        self.close()


class _AacCarrier(AudioCarrier):
    def __init__(self, source, in_stream, output, offset: float) -> None:
        context = in_stream.codec_context
        self.rate = context.sample_rate if context.sample_rate in _AAC_RATES else 48000
        layout = context.layout.name
        if layout not in _AAC_LAYOUTS:
            layout = "mono" if context.channels == 1 else "stereo"
        self.layout = layout
        out_stream = output.add_stream("aac", rate=self.rate, layout=layout)
        out_stream.bit_rate = min(64000 * av.AudioLayout(layout).nb_channels, 384000)
        super().__init__(source, in_stream, out_stream, offset)
        # Decoded audio becomes packed float at the output rate and layout, so trimming is array slicing.
        self._converter = av.AudioResampler(format="flt", layout=layout, rate=self.rate)
        self._blocks = self._positioned_blocks()
        self._pending: tuple[int, np.ndarray] | None = None
        self._written = 0  # output samples encoded so far

    def _positioned_blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(output sample index, samples x channels float32) blocks, continuous unless the source has gaps."""
        position = None
        for packet in self._source.demux(self._in):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                stamp = (
                    None if frame.pts is None else (frame.pts * frame.time_base - self._offset) * self.rate
                )
                for block in self._converter.resample(frame):
                    samples = block.to_ndarray().reshape(-1, av.AudioLayout(self.layout).nb_channels)
                    if position is None or (
                        stamp is not None and abs(stamp - position) > _GAP_SECONDS * self.rate
                    ):
                        position = round(stamp) if stamp is not None else 0
                    yield position, samples
                    position += len(samples)
                    stamp = None  # later blocks of the same frame follow on directly
        for block in self._converter.resample(None):  # samples a rate conversion still holds
            samples = block.to_ndarray().reshape(-1, av.AudioLayout(self.layout).nb_channels)
            yield (position or 0), samples
            position = (position or 0) + len(samples)

    def _encode(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self._written, Fraction(1, self.rate)
        self._out.container.mux(self._out.encode(frame))
        self._written += len(samples)

    def _emit(self, limit: int) -> None:
        """Encode samples up to output sample ``limit``: fill gaps with silence, drop overlaps."""
        while True:
            block = self._pending if self._pending is not None else next(self._blocks, None)
            self._pending = None
            if block is None:
                return
            start, samples = block
            if start < self._written:  # overlap, or audio from before the output's start
                samples = samples[self._written - start :]
                start = self._written
            if len(samples) == 0:
                continue
            if start >= limit:
                self._pending = (start, samples)
                return
            if start > self._written:
                gap = min(start, limit) - self._written
                self._encode(np.zeros((gap, samples.shape[1]), np.float32))
            take = min(len(samples), limit - start)
            self._encode(np.ascontiguousarray(samples[:take]))
            if take < len(samples):
                self._pending = (start + take, samples[take:])
                return

    def advance(self, until: float) -> None:
        self._emit(round(until * self.rate))

    def finish(self, end: float) -> None:
        self._emit(round(end * self.rate))
        self._out.container.mux(self._out.encode(None))
        self.close()
