"""Measuring time and peak memory, in this process or in a fresh one.

CPU memory: ``tracemalloc`` does not see torch's allocations, so we read the kernel's resident-set figures. The
peak is the process's high-water mark (``VmHWM``; ``ru_maxrss`` where /proc is missing). On Linux the mark can be
reset (``/proc/self/clear_refs``), so a measurement reports the peak *during the work* and the growth over the
resident size at its start. In a reused process, memory freed by earlier work can be reused without growing the
resident set, so the accurate figures come from a fresh process per measurement (``run_isolated``).

CUDA memory: ``torch.cuda.max_memory_allocated`` after a reset of the peak statistics.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from m3ddm.errors import UserError

MB = 1024 * 1024


def _proc_status_kb(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def max_rss_bytes() -> int:
    """The process's peak resident set size (since start or the last ``reset_peak_rss``)."""
    hwm = _proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux kilobytes


def current_rss_bytes() -> int:
    rss = _proc_status_kb("VmRSS")
    return rss * 1024 if rss is not None else max_rss_bytes()


def reset_peak_rss() -> bool:
    """Reset the high-water mark to the current resident size (Linux >= 4.0); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class PeakMemory:
    """Peak memory of a stretch of work: ``with PeakMemory(device) as mem: ...``, then ``mem.result()``.

    On CPU: ``peak_mb`` is the process's resident peak during the work and ``work_mb`` its growth over the resident
    size at the start. With ``device="cuda..."``: the peak of torch's allocated CUDA memory (and its growth), and the
    host figures as ``host_peak_mb`` / ``host_work_mb``.
    """

    device: str = "cpu"
    baseline: int = 0
    peak: int = 0
    host_baseline: int = 0
    host_peak: int = 0
    peak_is_lifetime: bool = False

    @property
    def on_cuda(self) -> bool:
        return str(self.device).startswith("cuda")

    def __enter__(self) -> PeakMemory:
        if self.on_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        self.peak_is_lifetime = not reset_peak_rss()
        self.host_baseline = current_rss_bytes()
        return self

    def __exit__(self, *exc) -> None:
        if self.on_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        self.host_peak = max_rss_bytes()

    def result(self) -> dict:
        host = {"peak_mb": self.host_peak / MB, "work_mb": max(0, self.host_peak - self.host_baseline) / MB,
                "baseline_mb": self.host_baseline / MB}
        out = {"memory_kind": "process_rss", **host, "peak_is_lifetime": self.peak_is_lifetime}
        if self.on_cuda:
            out.update({"memory_kind": "cuda_allocated", "peak_mb": self.peak / MB,
                        "work_mb": max(0, self.peak - self.baseline) / MB, "baseline_mb": self.baseline / MB,
                        **{f"host_{k}": v for k, v in host.items()}})
        return out


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def timed_repeats(fn: Callable[[], object], repeats: int, device: str = "cpu", warmup: int = 1,
                  clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (``clock``: seconds, for tests)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = clock()
        fn()
        synchronize(device)
        times.append(clock() - start)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def run_isolated(task: str, params: dict, timeout: float | None = None) -> dict:
    """Run ``task`` ("module:function", called with ``**params``, returning a JSON-able dict) in a fresh Python
    process, so its peak memory is its own. A ``UserError`` in the child is raised again here."""
    with tempfile.TemporaryDirectory(prefix="m3ddm-bench-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({"task": task, "params": params}))
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # make the child import this very package
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.run(
            [sys.executable, "-m", "m3ddm.benchmarks.isolated", str(request), str(result)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
        if result.is_file():
            payload = json.loads(result.read_text())
            if "user_error" in payload:
                raise UserError(payload["user_error"])
            if "result" in payload:
                return payload["result"]
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(f"benchmark child {task} failed (exit code {proc.returncode}):\n{tail}")


def run_task(task: str, params: dict, isolated: bool) -> dict:
    """``task`` in a fresh process (``isolated``) or here."""
    if isolated:
        return run_isolated(task, params)
    import torch

    threads = torch.get_num_threads()
    try:
        return resolve_task(task)(**params)
    finally:
        torch.set_num_threads(threads)  # a task's --threads must not outlive it


def resolve_task(task: str) -> Callable[..., dict]:
    import importlib

    module_name, _, function = task.partition(":")
    if not module_name.startswith("m3ddm.benchmarks."):
        raise ValueError(f"not a benchmark task: {task}")
    return getattr(importlib.import_module(module_name), function)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads when given; returns the number in use."""
    import torch

    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def allocation_task(megabytes: int) -> dict:
    """Calibration: the peak memory of touching ``megabytes`` of fresh memory (checks the measuring itself)."""
    if megabytes < 0:
        raise UserError(f"cannot allocate {megabytes} MB")
    with PeakMemory("cpu") as memory:
        block = bytearray(megabytes * MB)  # zero-filled, so every page is touched
        del block
    return memory.result()


def check_device(device: str) -> None:
    """A clear error for a device this machine does not have (before any child process starts)."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here")
    if kind not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: only cpu and cuda are supported by the benchmarks")
