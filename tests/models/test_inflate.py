"""Initialisation from a Stable Diffusion 2D UNet: the inflated model starts as SD run frame by frame."""

import pytest
import torch
from diffusers import UNet2DConditionModel

from m3ddm.errors import UserError
from m3ddm.models import M3DDMUNet


@pytest.fixture(scope="module")
def unet2d():
    torch.manual_seed(0)
    model = UNet2DConditionModel(
        block_out_channels=(8, 16, 16, 16), layers_per_block=2, norm_num_groups=4, attention_head_dim=2,
        cross_attention_dim=24, sample_size=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    # Random non-zero weights everywhere so that every copied tensor matters.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_inflated_model_equals_2d_model_per_frame(unet2d, tmp_path):
    unet2d.save_pretrained(tmp_path / "sd" / "unet")
    model = M3DDMUNet.from_sd_unet2d(tmp_path / "sd").eval()
    # Our time sinusoid uses max period 1000 (official quirk); SD uses 10000. Align it for the comparison.
    model.time_proj.max_period = 10000
    ref2d = UNet2DConditionModel.from_pretrained(tmp_path / "sd" / "unet").eval()
    for name, module in ref2d.named_modules():  # text cross-attention off, as the inflated one starts
        if name.endswith("attn2.to_out.0"):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    # Resnet GroupNorms take statistics over all frames (spec Q3), so the frames are equal here: those statistics
    # then equal the per-frame ones, and any difference left would come from non-identity temporal layers.
    frames = 3
    latents = torch.randn(1, 4, 1, 8, 8).expand(1, 4, frames, 8, 8)
    context = torch.randn(1, 5, frames, 8, 8)  # the 5 extra channels: ignored at init
    sample = torch.cat([latents, context], dim=1)
    with torch.no_grad():
        tokens = model.encode_global(torch.randn(2, 4, 8, 8), num_global=2)
        out3d = model.denoise(sample, 321, 7, tokens)
        per_frame = latents[0].permute(1, 0, 2, 3)  # [F, 4, h, w]
        out2d = ref2d(per_frame, 321, encoder_hidden_states=torch.zeros(frames, 1, 24)).sample
    assert torch.allclose(out3d[0].permute(1, 0, 2, 3), out2d, atol=1e-5, rtol=1e-4)


def test_inflation_copies_spatial_weights_and_zero_inits_extras(unet2d):
    model = M3DDMUNet.from_sd_unet2d(unet2d)
    conv_in = model.conv_in.weight
    assert torch.equal(conv_in[:, :4, 0], unet2d.conv_in.weight)
    assert conv_in[:, 4:].abs().sum() == 0
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    assert torch.equal(model.state_dict()[name], unet2d.state_dict()[name])
    key = model.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.weight
    assert key.shape == (8, 320)
    temporal = model.down_blocks[0].resnets[0].conv1.temporal_conv.weight
    assert torch.equal(temporal[:, :, 1], torch.eye(temporal.shape[0]))


def test_inflation_from_bad_folder(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        M3DDMUNet.from_sd_unet2d(tmp_path)
