import pytest
import torch

from m3ddm.codecs import LatentCodec
from m3ddm.models import M3DDMUNet
from m3ddm.pipeline import M3DDMPipeline
from m3ddm.sampling import make_scheduler


def make_tiny_pipeline(**settings) -> M3DDMPipeline:
    torch.manual_seed(0)
    unet = M3DDMUNet.from_preset("tiny").eval()
    with torch.no_grad():  # random non-zero output projections, so every branch and guide matters
        for name, p in unet.named_parameters():
            if "to_out" in name or "proj_out" in name:
                p.normal_(0, 0.2)
    return M3DDMPipeline(unet=unet, vae=LatentCodec.tiny().vae.eval(), scheduler=make_scheduler("dpmpp"),
                         **{"default_size": 96, "default_steps": 2, **settings})


@pytest.fixture(scope="session")
def tiny_pipeline() -> M3DDMPipeline:
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tiny_pipeline) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny"
    tiny_pipeline.save_pretrained(path)
    return str(path)
