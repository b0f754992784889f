"""The shipped default model (package data ``m3ddm/weights/default``): present, small, trained, and used by
``m3ddm outpaint`` when no model option is given."""

import json

import numpy as np
import pytest
import torch

from m3ddm.cli import main
from m3ddm.io import probe_video
from m3ddm.io.samples import make_test_video
from m3ddm.pipeline import DEFAULT_MODEL_DIR, M3DDMPipeline, OutpaintOptions
from m3ddm.training.synthetic import synthetic_video
from m3ddm.utils.pixels import psnr, signed_to_uint8, to_signed

MAX_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def default_pipeline() -> M3DDMPipeline:
    torch.set_num_threads(1)
    return M3DDMPipeline.load()


def test_folder_is_complete_and_small():
    for part in ("model_index.json", "MODEL_CARD.md", "unet/config.json", "vae/config.json",
                 "scheduler/scheduler_config.json"):
        assert (DEFAULT_MODEL_DIR / part).is_file(), part
    weights = sorted(p.relative_to(DEFAULT_MODEL_DIR).as_posix() for p in DEFAULT_MODEL_DIR.rglob("*.safetensors"))
    assert weights == ["unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]
    assert not list(DEFAULT_MODEL_DIR.rglob("*.bin"))  # safetensors only
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert total < MAX_BYTES, f"default model is {total / 2**20:.1f} MiB"


@pytest.mark.slow
def test_loads_without_argument_with_its_defaults(default_pipeline):
    index = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    config = default_pipeline.config
    assert config.global_frames == "canvas" and config.default_scheduler == "dpmpp"
    assert config.default_size == index["default_size"] and config.default_steps == index["default_steps"]
    assert config.default_strength == index["default_strength"]
    resolved = default_pipeline.resolve(OutpaintOptions(), 8)
    assert resolved.strength == index["default_strength"]
    assert [resolved.guidance_context, resolved.guidance_global] == index["default_guidance"]
    assert resolved.size == index["default_size"] and resolved.noise_share == index["default_noise_share"]
    assert resolved.texture == index["default_texture"] == 1.0 and resolved.steady == index["default_steady"]
    # v4: the TAEF2 codec (32 channels at 1/8), shipped with its MIT licence
    assert default_pipeline.codec.downsample_factor == 8 and default_pipeline.vae.config.latent_channels == 32
    assert "MIT License" in (DEFAULT_MODEL_DIR / "vae" / "LICENSE").read_text()
    assert type(default_pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert default_pipeline.unet.config.global_context  # an M3DDM model (global frames), not the msdm ablation
    # Both networks run in float32 on the CPU, whatever dtype the files store.
    assert next(default_pipeline.unet.parameters()).dtype == torch.float32
    assert default_pipeline.codec.dtype == torch.float32


@pytest.mark.slow
def test_codec_is_trained(default_pipeline):
    """The codec reconstructs a held-out synthetic frame: TAEF2 at about 20.2 dB (an untrained small codec: 11)."""
    frame = synthetic_video(3, seed=7, num_frames=1, height=64, width=64).frames[0]
    codec = default_pipeline.codec
    with torch.no_grad():
        recon = signed_to_uint8(codec.decode(codec.encode(to_signed([frame]))))[0]
    mse = np.mean((recon.astype(np.float64) - frame) ** 2)
    assert psnr(mse) > 18


@pytest.mark.slow
def test_outpaint_cli_uses_the_default_model(tmp_path, capsys):
    torch.set_num_threads(1)
    video = make_test_video(tmp_path / "clip.mp4", frames=8, size=(64, 48))
    out = tmp_path / "out.mp4"
    code = main(["outpaint", str(video), "-o", str(out), "--ratio", "9:16", "--steps", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    info = probe_video(out, exact=True)
    assert info.num_frames == 8
    assert abs(info.width / info.height - 9 / 16) < 0.02
    assert info.width >= 64  # the source keeps its full resolution inside the output


@pytest.mark.slow
def test_border_continues_the_source_better_than_grey(default_pipeline):
    """On a held-out synthetic pan the generated border is closer to the truth than a flat mid-grey border."""
    frames = synthetic_video(5, seed=123, num_frames=16, height=64, width=96).frames
    pad = 12
    out = default_pipeline.outpaint_array(frames[:, :, pad:-pad], fps=24, pad_px=(pad, 0, pad, 0), strides=(1,),
                                          steps=10)
    region = np.zeros(frames.shape[1:3], bool)
    region[:, :pad] = region[:, -pad:] = True
    model_mse = np.mean((out[:, region].astype(np.float64) - frames[:, region]) ** 2)
    grey_mse = np.mean((128.0 - frames[:, region]) ** 2)
    assert model_mse < 0.5 * grey_mse, (model_mse, grey_mse)
