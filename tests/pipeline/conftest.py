import pytest

from m3ddm.benchmarks.models import tiny_pipeline as make_tiny_pipeline
from m3ddm.pipeline import M3DDMPipeline


@pytest.fixture(scope="session")
def tiny_pipeline() -> M3DDMPipeline:
    """The shared random tiny pipeline at a 96-pixel canvas and 2 steps: seconds per clip on one CPU thread."""
    return make_tiny_pipeline(default_size=96, default_steps=2)


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tiny_pipeline) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny"
    tiny_pipeline.save_pretrained(path)
    return str(path)
