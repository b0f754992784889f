"""The official-compatibility contract: strict key layout and numeric parity with the official UNet."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from m3ddm.compat.parity import main as parity_main
from m3ddm.compat.parity import run_parity
from m3ddm.models import M3DDMUNet


def test_parity_command_passes_on_fixture(unet_fixture_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "m3ddm.compat.parity", unet_fixture_dir, "--threads", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for case in ("dc1", "dc2", "dc2_empty", "dc4", "dc1.temb", "dc1.femb", "enc_probe.out"):
        assert case in proc.stdout
    assert "7 of 7 cases within tolerance" in proc.stdout


def test_parity_fails_with_one_perturbed_weight(unet_fixture_dir, tmp_path, capsys):
    fixture = tmp_path / "fixture"
    shutil.copytree(unet_fixture_dir, fixture)
    weights = fixture / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    key = "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight"
    state[key] = state[key] + 0.05 * torch.randn_like(state[key])
    save_file(state, str(weights))
    assert parity_main([str(fixture)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_every_case_within_tolerance_in_process(unet_fixture_dir):
    results = run_parity(unet_fixture_dir)
    assert len(results) == 7
    assert all(r.passed for r in results), [(r.name, r.max_abs_error) for r in results]
    assert max(r.max_abs_error for r in results) < 1e-4


def test_full_size_manifest_on_meta_device(unet_fixture_dir):
    manifest = json.loads((Path(unet_fixture_dir) / "full_manifest.json").read_text())
    with torch.device("meta"):  # 1.3 B parameters: never allocated
        model = M3DDMUNet(**{k: v for k, v in manifest["config"].items()})
    state = model.state_dict()
    expected = {e["name"]: tuple(e["shape"]) for e in manifest["entries"]}
    assert len(state) == manifest["num_entries"] == 1516
    assert set(state) == set(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert sum(p.numel() for p in model.parameters()) == manifest["total_parameters"] == 1_299_279_320
    by_module = manifest["parameters_by_top_module"]
    for top, count in by_module.items():
        assert sum(p.numel() for p in model.get_submodule(top).parameters()) == count, top


def test_official_preset_matches_manifest_config(unet_fixture_dir):
    manifest = json.loads((Path(unet_fixture_dir) / "full_manifest.json").read_text())
    with torch.device("meta"):
        model = M3DDMUNet.from_preset("official")
    for key, value in manifest["config"].items():
        got = model.config[key]
        assert (list(got) if isinstance(got, tuple) else got) == value, key
