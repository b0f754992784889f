import os

import cv2
import numpy as np
import pytest
import torch

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


def horizontal_pan(num_frames: int = 16, height: int = 96, width: int = 96, speed: int = 3) -> np.ndarray:
    """A camera panning right over a natural photo (scikit-image's cat), ``speed`` pixels per frame."""
    import skimage.data

    photo = cv2.resize(skimage.data.chelsea(), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert photo.shape[1] >= 10 + speed * num_frames + width, "photo too small for this pan"
    return np.stack([photo[20 : 20 + height, 10 + speed * t : 10 + speed * t + width] for t in range(num_frames)])


@pytest.fixture(scope="session")
def pan_video() -> np.ndarray:
    return horizontal_pan()
