"""Fixtures for the web app's tests: a tiny random pipeline (fast, no weights), small clips, a launched app."""

import os
import socket
from pathlib import Path

import pytest

from m3ddm.benchmarks.models import tiny_pipeline
from m3ddm.io.samples import encoder_available, make_test_video
from m3ddm.pipeline import M3DDMPipeline

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls from the tests


@pytest.fixture(scope="session")
def tiny_pipe() -> M3DDMPipeline:
    """The shared random tiny pipeline at a 96-pixel canvas and 2 steps: seconds per clip on one CPU thread."""
    return tiny_pipeline(default_size=96, default_steps=2)


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """20 frames of 160x120 (4:3) at 24 fps, with an AAC tone when the encoder exists."""
    folder = tmp_path_factory.mktemp("clips")
    return make_test_video(folder / "clip.mp4", frames=20, size=(160, 120), fps=24,
                           audio="aac" if encoder_available("aac") else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A localhost port nobody listens on right now."""
    return _free_port()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, tiny_pipe, clip):
    """The app served on a free localhost port for the session (skipped without gradio)."""
    pytest.importorskip("gradio")
    from m3ddm.app.ui import build_demo, launch

    root = tmp_path_factory.mktemp("app")
    demo = build_demo(tiny_pipe, model_label="a tiny random test model", work_root=root, examples=[clip])
    port = _free_port()
    launch(demo, "127.0.0.1", port, block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
