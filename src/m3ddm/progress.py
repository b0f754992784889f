"""Progress of an outpainting job, for a person at a terminal and for a log file alike.

Three modes: ``"bar"`` (a terminal: stage lines and a tqdm bar over the denoising steps), ``"lines"``
(stderr redirected to a log, CI, a server: one line per stage and one per finished window, with percent
done, elapsed time and ETA) and ``"quiet"``. Before generating, both speaking modes print the plan (windows,
UNet calls); after the first denoising step they print an estimate of the generating time, measured on
this machine with this model and canvas (the first step is the only honest yardstick: the speed of a UNet
call varies by orders of magnitude between models, canvases and devices).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

MODES = ("bar", "lines", "quiet")


def format_seconds(seconds: float) -> str:
    """A short human duration: '8 s', '4 min 05 s', '2 h 03 min'."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Reporter:
    """Reports one job's stages, plan and windows on ``stream`` (stderr by default).

    ``prefix`` starts every line (e.g. "[2/5] " in a batch). ``clock`` is injectable so tests need not wait.
    """

    def __init__(
        self,
        mode: str = "lines",
        stream: TextIO | None = None,
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.stream = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self.clock = clock
        self._bar = None
        self._started: float | None = None
        self._total_windows = 0
        self._total_units = 0  # window-steps: one window denoised by one step
        self._units = 0
        self._windows = 0
        self._estimated = False
        self._adapt_started = 0.0
        self._adapt_total = self._adapt_first = self._adapt_reported = 0

    @classmethod
    def for_stream(cls, quiet: bool = False, stream: TextIO | None = None, prefix: str = "") -> Reporter:
        """The mode that suits ``stream``: a bar on a terminal, lines otherwise, nothing when ``quiet``."""
        stream = stream if stream is not None else sys.stderr
        if quiet:
            return cls("quiet", stream, prefix)
        isatty = getattr(stream, "isatty", None)
        return cls("bar" if isatty is not None and isatty() else "lines", stream, prefix)

    @property
    def enabled(self) -> bool:
        return self.mode != "quiet"

    def line(self, text: str) -> None:
        """One line of progress (above the bar on a terminal)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(f"{self.prefix}{text}", file=self.stream)
        else:
            print(f"{self.prefix}{text}", file=self.stream, flush=True)

    def stage(self, name: str, detail: str = "") -> None:
        """A stage begins: loading, encoding, generating, writing."""
        self.line(f"{name}: {detail}" if detail else name)

    # -------------------------------------------------------------------------- adapting
    def adapting(self, steps: int, done: int, method: str) -> Reporter:
        """Per-video tuning starts (``done`` steps were already taken by an interrupted run); returns the step
        counter (``adapt_step``/``close``)."""
        self._adapt_started, self._adapt_total, self._adapt_first = self.clock(), steps, done
        self._adapt_reported = done
        resumed = f", resuming after step {done}" if done else ""
        self.stage("adapting", f"tuning the model on this video: {steps} step{'s' * (steps != 1)} ({method}, one "
                               f"forward and backward pass each){resumed}")
        if self.mode == "bar" and steps > done:
            from tqdm import tqdm

            self._bar = tqdm(total=steps, initial=done, unit="step", desc=f"{self.prefix}adapting",
                             dynamic_ncols=True, file=self.stream)
        return self

    def adapt_step(self, step: int, loss: float) -> None:
        """Adaptation step ``step`` (1-based) is done; after the first, the estimated tuning time; in line mode a
        line about every tenth of the way."""
        if step == self._adapt_first + 1 and self.enabled:
            spent = self.clock() - self._adapt_started
            self.line(f"estimate: about {format_seconds(spent * (self._adapt_total - self._adapt_first))} to adapt "
                      f"(measured on the first step: {format_seconds(spent)})")
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            return
        if self.mode != "lines":
            return
        tenth = max(1, self._adapt_total // 10)
        if step - self._adapt_reported < tenth and step != self._adapt_total:
            return
        self._adapt_reported = step
        elapsed = self.clock() - self._adapt_started
        taken = step - self._adapt_first
        eta = elapsed / taken * (self._adapt_total - step) if taken else 0.0
        self.line(f"adapt step {step}/{self._adapt_total} ({100 * step / self._adapt_total:.0f}%), loss {loss:.4f}, "
                  f"elapsed {format_seconds(elapsed)}, ETA {format_seconds(eta)}")

    # -------------------------------------------------------------------------- generating
    def generating(self, windows: int, levels: int, steps: int, branches: int, unet_calls: int) -> Reporter:
        """The plan is known and denoising starts; returns the step counter (``update``/``close``)."""
        self._started = self.clock()
        self._total_windows, self._total_units = windows, windows * steps
        self._units = self._windows = 0
        self._estimated = False
        self.stage("generating", f"{windows} window{'s' * (windows != 1)} in {levels} level{'s' * (levels != 1)}, "
                                 f"{unet_calls} UNet calls ({steps} step{'s' * (steps != 1)} x {branches} "
                                 f"guidance branch{'es' * (branches != 1)} per window)")
        if self.mode == "bar" and windows:
            from tqdm import tqdm

            self._bar = tqdm(total=windows * steps, unit="step", desc=f"{self.prefix}{windows} windows",
                             dynamic_ncols=True, file=self.stream)
        return self

    def update(self, units: int) -> None:
        """``units`` more window-steps are done (one denoising step of a batch of ``units`` windows)."""
        self._units += units
        if self._bar is not None:
            self._bar.update(units)
        if not self._estimated and self._started is not None and self._total_units:
            self._estimated = True
            spent = self.clock() - self._started
            total = spent / self._units * self._total_units
            self.line(f"estimate: about {format_seconds(total)} to generate "
                      f"(measured on the first step: {format_seconds(spent)} for {units} window-step"
                      f"{'s' * (units != 1)})")

    def window_done(self, window=None) -> None:
        """A window is finished (its latents are saved); in line mode, one line with percent and ETA."""
        self._windows += 1
        if self.mode != "lines" or not self._total_windows:
            return
        now = self.clock()
        elapsed = now - (self._started if self._started is not None else now)
        # Every window runs the same number of steps, so finished windows measure the work done.
        fraction = min(1.0, self._windows / self._total_windows)
        eta = elapsed / fraction * (1 - fraction)
        level = f", level {window.level}" if getattr(window, "level", None) is not None else ""
        self.line(f"window {self._windows}/{self._total_windows} ({100 * fraction:.0f}%){level}, "
                  f"elapsed {format_seconds(elapsed)}, ETA {format_seconds(eta)}")

    def close(self) -> None:
        """Denoising is over."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
