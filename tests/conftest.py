import os

import numpy as np
import pytest
import torch

from media_checks import horizontal_pan

# The machine is shared and has 2 cores: keep torch from oversubscribing them.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# The official-UNet parity fixture, shipped with the repo (a copy of shared/fixtures/m3ddm_unet).
FIXTURE = os.path.join(os.path.dirname(__file__), "data", "m3ddm_unet")


@pytest.fixture(scope="session")
def unet_fixture_dir() -> str:
    path = os.environ.get("M3DDM_UNET_FIXTURE", FIXTURE)
    if not os.path.isdir(path):
        pytest.fail(f"parity fixture folder not found at {path} (set M3DDM_UNET_FIXTURE)")
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def pan_video() -> np.ndarray:
    return horizontal_pan()
