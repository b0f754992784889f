"""A tiny random pipeline for the ComfyUI node tests (fast, no weights)."""

import pytest
import torch

from m3ddm.codecs import LatentCodec
from m3ddm.models import M3DDMUNet
from m3ddm.pipeline import M3DDMPipeline
from m3ddm.sampling import make_scheduler


@pytest.fixture(scope="session")
def tiny_pipe() -> M3DDMPipeline:
    torch.manual_seed(0)
    unet = M3DDMUNet.from_preset("tiny").eval()
    return M3DDMPipeline(unet=unet, vae=LatentCodec.tiny().vae.eval(), scheduler=make_scheduler("dpmpp"),
                         default_size=96, default_steps=2)
