"""Strict loading: official layout (.safetensors / .bin), clear errors for broken folders."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from m3ddm.errors import UserError
from m3ddm.models import M3DDMUNet


@pytest.fixture
def folder(tmp_path, unet_fixture_dir):
    target = tmp_path / "unet"
    shutil.copytree(unet_fixture_dir, target, ignore=shutil.ignore_patterns("*puts*", "*.json"))
    shutil.copy(f"{unet_fixture_dir}/config.json", target / "config.json")
    return target


def _rewrite(folder, edit):
    path = folder / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))


def test_bin_weights_load_through_weights_only(folder):
    state = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(state, folder / "diffusion_pytorch_model.bin")
    model = M3DDMUNet.from_pretrained(folder)
    assert torch.equal(model.state_dict()["conv_in.weight"], state["conv_in.weight"])


def test_bin_with_arbitrary_objects_is_refused(folder):
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({"conv_in.weight": torch.zeros(1), "evil": object()}, folder / "diffusion_pytorch_model.bin")
    with pytest.raises(UserError, match="cannot read UNet weights"):
        M3DDMUNet.from_pretrained(folder)


def test_missing_key_is_named(folder):
    _rewrite(folder, lambda s: s.pop("mid_block.attentions.0.proj_in2.weight"))
    with pytest.raises(UserError, match=r"1 missing: mid_block\.attentions\.0\.proj_in2\.weight"):
        M3DDMUNet.from_pretrained(folder)


def test_unexpected_and_misshaped_keys_are_named(folder):
    def edit(state):
        state["extra.weight"] = torch.zeros(2)
        state["conv_in.weight"] = torch.zeros(8, 4, 1, 3, 3)

    _rewrite(folder, edit)
    with pytest.raises(UserError) as info:
        M3DDMUNet.from_pretrained(folder)
    message = str(info.value)
    assert "unexpected: extra.weight" in message and "mis-shaped: conv_in.weight" in message
    assert "\n" not in message


def test_missing_files_and_bad_configs(tmp_path, folder):
    with pytest.raises(UserError, match="not found"):
        M3DDMUNet.from_pretrained(tmp_path / "nope")
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(UserError, match="has no weights"):
        M3DDMUNet.from_pretrained(folder)
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read"):
        M3DDMUNet.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "_class_name": "UNet2DConditionModel"}))
    with pytest.raises(UserError, match="expected one of"):
        M3DDMUNet.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable UNet config"):
        M3DDMUNet.from_pretrained(folder)


def test_half_precision_checkpoint_loads_as_float32_by_default(folder):
    _rewrite(folder, lambda s: s.update({k: v.half() for k, v in s.items() if v.is_floating_point()}))
    assert M3DDMUNet.from_pretrained(folder).dtype == torch.float32
    assert M3DDMUNet.from_pretrained(folder, torch_dtype=torch.float16).dtype == torch.float16
