"""When each frame is shown: a constant frame rate, or the per-frame timestamps of a variable-frame-rate video.

Most videos show frame ``i`` at ``i / fps``. Phone recordings, screen captures and AVIs with dropped frames do
not: their frames carry irregular timestamps, and writing them at a constant rate plays the video too fast or
too slow and puts the sound out of sync. ``detect_timing`` tells the two cases apart from the decoded
timestamps; a :class:`FrameTiming` carries the timestamps of the second case to the writer, exactly (integer
ticks of the source's time base).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

# A frame whose timestamp is this many ticks off i / fps still counts as constant-rate: containers round
# timestamps to their time base (Matroska's 1 ms ticks put 24000/1001 fps frames up to half a tick off).
_TICK_SLACK = 1.0 + 1e-6


@dataclass(frozen=True)
class FrameTiming:
    """Timestamps of a video's frames: ``pts[i]`` ticks of ``time_base`` after the first frame.

    ``pts[0]`` is 0 and the values strictly increase; ``end`` is where the last frame stops showing (the
    video's play time), so a writer can give the last frame its duration and cut the audio there.
    """

    time_base: Fraction
    pts: tuple[int, ...] = field(repr=False)
    end: int

    def __post_init__(self) -> None:
        if not self.pts or self.pts[0] != 0:
            raise ValueError("frame timestamps must start at 0")
        if any(b <= a for a, b in zip(self.pts, self.pts[1:], strict=False)) or self.end <= self.pts[-1]:
            raise ValueError("frame timestamps must strictly increase and end after the last frame")
        if self.time_base <= 0:
            raise ValueError(f"time base must be positive, got {self.time_base}")

    def __len__(self) -> int:
        return len(self.pts)

    def seconds(self, index: int) -> Fraction:
        """Time of frame ``index`` (``len(self)`` gives the end), in seconds after the first frame."""
        ticks = self.end if index == len(self.pts) else self.pts[index]
        return ticks * self.time_base

    @property
    def duration(self) -> Fraction:
        return self.end * self.time_base

    @property
    def nominal_fps(self) -> Fraction:
        """The average frame rate (frames per second of play time): what a constant-rate model sees."""
        return (Fraction(len(self.pts)) / self.duration).limit_denominator(1001)

    def index_at(self, seconds: Fraction) -> int:
        """Index of the first frame shown at or after ``seconds`` (``len(self)`` when there is none)."""
        return bisect.bisect_left(self.pts, Fraction(seconds) / self.time_base)

    def window(self, first: int, stop: int) -> FrameTiming:
        """The timing of frames ``first <= i < stop``, rebased so frame ``first`` is at 0."""
        if not 0 <= first < stop <= len(self.pts):
            raise ValueError(f"cannot take frames {first}..{stop} of {len(self.pts)}")
        origin = self.pts[first]
        end = self.pts[stop] if stop < len(self.pts) else self.end
        return FrameTiming(self.time_base, tuple(p - origin for p in self.pts[first:stop]), end - origin)


def detect_timing(
    stamps: Sequence[int | None],
    time_base: Fraction,
    rates: Sequence[Fraction],
    stream_end: int | None = None,
) -> tuple[Fraction | None, FrameTiming | None]:
    """``(rate, None)`` when the decoded ``stamps`` (ticks, presentation order) follow ``i / rate`` for one of
    the container's ``rates`` (within a tick); otherwise ``(None, timing)`` with the frames' own timestamps.

    ``stream_end`` (ticks, same origin as the stamps) is where the stream ends, when the container says so.
    Frames without a timestamp make the timing unknown: the first rate is kept, as a constant-rate reader does.
    """
    rates = [Fraction(r) for r in rates if r and r > 0]
    if not stamps or any(s is None for s in stamps) or time_base is None or time_base <= 0:
        return (rates[0] if rates else None), None
    origin = stamps[0]
    relative = np.asarray([s - origin for s in stamps], dtype=np.float64)
    index = np.arange(len(stamps), dtype=np.float64)
    for rate in rates:
        ticks_per_frame = float(1 / (rate * time_base))
        if np.all(np.abs(relative - index * ticks_per_frame) <= _TICK_SLACK):
            return rate, None
    if len(stamps) == 1:
        return (rates[0] if rates else None), None
    pts = _strictly_increasing([int(s - origin) for s in stamps])
    last_gap = pts[-1] - pts[-2]
    end = stream_end - origin if stream_end is not None else None
    # The container's end is kept only when it is after the last frame: MP4 files with B-frames and
    # irregular timestamps report a shorter duration (dts-based); the last gap is then the best guess.
    if end is None or end <= pts[-1]:
        end = pts[-1] + last_gap
    return None, FrameTiming(Fraction(time_base), tuple(pts), int(end))


def _strictly_increasing(pts: list[int]) -> list[int]:
    # Damaged files repeat or reorder a timestamp now and then; a frame must still come after the one before.
    fixed = [0]
    for value in pts[1:]:
        fixed.append(max(value, fixed[-1] + 1))
    return fixed
