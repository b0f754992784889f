"""A tiny random pipeline for the ComfyUI node tests (fast, no weights)."""

import pytest

from m3ddm.benchmarks.models import tiny_pipeline
from m3ddm.pipeline import M3DDMPipeline


@pytest.fixture(scope="session")
def tiny_pipe() -> M3DDMPipeline:
    return tiny_pipeline(default_size=96, default_steps=2)
