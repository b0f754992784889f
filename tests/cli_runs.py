"""Test-only helpers for claims about the user's file: the CLI in a fresh process, and a job crashed in this one.

Both run torch on one thread, so a run crashed here and resumed through the CLI does the same arithmetic as an
uninterrupted CLI run. Importable as ``from cli_runs import ...`` (``tests`` is on pytest's ``pythonpath``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import torch


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``m3ddm ARGS`` in a fresh process on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "m3ddm", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


class Crash(Exception):
    """Raised from a progress hook to stand for a crash (power cut, Ctrl-C) part-way through a job."""


def crash_in_process(job: Callable[[], object]) -> None:
    """Run ``job`` (which must raise :class:`Crash`) on one torch thread, as the CLI runs with ``--threads 1``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(Crash):
            job()
    finally:
        torch.set_num_threads(threads)
