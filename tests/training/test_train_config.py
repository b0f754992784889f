"""Configs, bad input caught before training, variants and initialisation, the `m3ddm train` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from m3ddm.cli import main as cli_main
from m3ddm.errors import UserError
from m3ddm.training import loop
from m3ddm.training.config import config_from_dict, load_config
from m3ddm.training.data import ClipDataset, synthetic_entries
from m3ddm.training.synthetic import write_synthetic_videos


def test_shipped_configs():
    tiny = load_config("tiny-cpu")
    assert tiny.data.num_frames == 16 and tiny.data.num_global_frames == 16 and tiny.model.variant == "m3ddm"
    assert tiny.masking.strategies == {"four": 0.2, "one": 0.1, "two": 0.35, "random": 0.1, "all": 0.25}
    with pytest.raises(UserError, match="data.root is not a folder: data/webvid"):
        load_config("official")  # its paths are placeholders to edit


def test_official_config_with_real_paths(tmp_path):
    for sub in ("videos", "sd/unet", "sd/vae"):
        (tmp_path / sub).mkdir(parents=True)
    config = load_config("official", {"data": {"root": str(tmp_path / "videos")},
                                      "model": {"path": str(tmp_path / "sd/unet")},
                                      "codec": {"path": str(tmp_path / "sd/vae")}})
    assert config.model.init == "sd" and config.model.preset == "official" and config.data.size == (256, 256)
    assert config.optim.learning_rate == 1e-4 and config.optim.lr_warmup_steps == 1000


@pytest.mark.parametrize("override, message", [
    ({"train": {"max_stepz": 3}}, "unknown key 'train.max_stepz'"),
    ({"bogus": {}}, "unknown key 'bogus'"),
    ({"train": {"batch_size": "two"}}, "train.batch_size must be an integer"),
    ({"train": {"batch_size": 0}}, "train.batch_size must be >= 1"),
    ({"data": {"size": [64]}}, "data.size must be a list of 2 values"),
    ({"data": {"stride_range": [5, 2]}}, "stride_range"),
    ({"masking": {"strategies": {"four": 0.5, "one": 0.5, "two": 0.5, "random": 0, "all": 0}}}, "sum to 1"),
    ({"masking": {"guide_cases": {"none": 1.0, "sometimes": 0.0}}}, "unknown entries"),
    ({"masking": {"ratio_range": [0.5, 1.5]}}, "ratio_range"),
    ({"model": {"variant": "m4ddm"}}, "model.variant must be one of"),
    ({"model": {"init": "checkpoint"}}, "model.path is required"),
    ({"model": {"overrides": {"global_context": False}}}, "set by model.variant"),
    ({"optim": {"lr_scheduler": "sometimes"}}, "optim.lr_scheduler"),
    ({"data": {"latent_cache_size": [64, 64]}}, "data.latent_cache_size needs data.latent_cache"),
    ({"data": {"latent_cache": "cache", "latent_cache_size": [8, 8]}}, "latent_cache_size must be at least"),
    ({"model": {"focus_timesteps": [199, 1000], "focus_share": 0.5}}, "focus_timesteps must be whole timesteps"),
    ({"model": {"focus_timesteps": [199], "focus_share": 1.5}}, "focus_share must be in"),
    ({"model": {"focus_share": 0.5}}, "focus_share needs model.focus_timesteps"),
    ({"model": {"hidden_context": "grey"}}, "model.hidden_context must be one of"),
    ({"model": {"relative_to_context": True}}, "relative_to_context needs model.hidden_context: smooth"),
])
def test_bad_configs_raise_one_clear_user_error(tiny_dict, override, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")) as info:
        config_from_dict(tiny_dict(override))
    assert "\n" not in str(info.value)


def test_empty_and_unreadable_data_fail_before_training(tiny_config, tmp_path):
    (tmp_path / "empty").mkdir()
    config = tiny_config({"data": {"root": str(tmp_path / "empty")}})
    with pytest.raises(UserError, match="no videos .* found under"):
        loop.train(config, output_dir=tmp_path / "out1")
    assert not (tmp_path / "out1").exists()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mp4").write_bytes(b"\x00" * 100)
    (bad / "b.webm").write_bytes(b"not a video")
    config = tiny_config({"data": {"root": str(bad)}})
    with pytest.raises(UserError, match="none of the 2 videos .* could be read"):
        loop.train(config, output_dir=tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_short_videos_are_padded_or_refused(tiny_config, tmp_path):
    write_synthetic_videos(tmp_path / "short", 1, num_frames=3, height=64, width=64)
    config = tiny_config({"data": {"root": str(tmp_path / "short"), "short_videos": "skip"}})
    with pytest.raises(UserError, match="shorter than data.num_frames=4"):
        loop.collect_entries(config)
    index = tmp_path / "index.json"
    config = tiny_config({"data": {"root": str(tmp_path / "short"), "short_videos": "pad",
                                   "index_file": str(index)}})
    entries, failures = loop.collect_entries(config)
    assert len(entries) == 1 and entries[0].num_frames == 3 and not failures
    write_synthetic_videos(tmp_path / "short", 2, seed=5, num_frames=6, height=64, width=64)
    assert loop.collect_entries(config) == (entries, failures)  # the saved index is reused, not re-probed
    index.unlink()
    assert len(loop.collect_entries(config)[0]) == 3
    item = ClipDataset(entries, loop.clip_settings(config), config.masking)[0]
    assert torch.equal(item["frames"][2], item["frames"][3])  # last frame repeated, stride 1
    assert float(item["fps"]) == 24.0


@pytest.mark.parametrize("size, message", [([60, 60], "multiple of the codec's factor 8"),
                                           ([32, 32], "global encoder needs >= 5x5")])
def test_impossible_sizes_are_user_errors(tiny_config, tmp_path, size, message):
    config = tiny_config({"data": {"size": size}})
    with pytest.raises(UserError, match=message):
        loop.train(config, output_dir=tmp_path / "out")


def test_variants_shape_the_model_and_the_data(tiny_config):
    for variant, has_global in (("m3ddm", True), ("msdm", False), ("sdm", False)):
        config = tiny_config({"model": {"variant": variant}})
        unet = loop.build_unet(config)
        assert unet.config.global_context is has_global
        assert (unet.global_img_encoder is not None) is has_global
        probs = config.masking.for_variant(variant)
        ds = ClipDataset(synthetic_entries(2, 8, 64, 64, 24.0), loop.clip_settings(config), probs)
        items = [ds[k] for k in range(12)]
        assert all(("global_frames" in it) is has_global for it in items)
        if variant == "sdm":  # first and last frames are the only guides, always
            assert all(it["guides"].tolist() == [True, False, False, True] for it in items)
        else:
            assert len({tuple(it["guides"].tolist()) for it in items}) > 1


def test_init_from_checkpoint_and_from_sd(tiny_config, tmp_path):
    from diffusers import UNet2DConditionModel

    from m3ddm.models import M3DDMUNet

    torch.manual_seed(1)
    trained = M3DDMUNet.from_preset("tiny", global_context=True)
    trained.save_pretrained(tmp_path / "ckpt")
    config = tiny_config({"model": {"init": "checkpoint", "path": str(tmp_path / "ckpt")}})
    loaded = loop.build_unet(config)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), trained.state_dict().values(),
                                                strict=True))
    with pytest.raises(UserError, match="global_context=True"):
        loop.build_unet(tiny_config({"model": {"init": "checkpoint", "path": str(tmp_path / "ckpt"),
                                               "variant": "msdm"}}))

    sd = UNet2DConditionModel(
        block_out_channels=(8, 16, 16, 16), layers_per_block=2, norm_num_groups=4, attention_head_dim=2,
        cross_attention_dim=24, sample_size=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    sd.save_pretrained(tmp_path / "sd" / "unet")
    config = tiny_config({"model": {"init": "sd", "path": str(tmp_path / "sd" / "unet"), "variant": "sdm"}})
    inflated = loop.build_unet(config)
    assert inflated.config.global_context is False
    assert torch.equal(inflated.conv_in.weight[:, :4, 0], sd.conv_in.weight)


def test_cli_reports_config_mistakes_in_one_line(tiny_dict, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_dict({"train": {"learning_rate": 1.0}})))
    assert cli_main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("m3ddm train: error: invalid training config: unknown key 'train.learning_rate' "
                   "(known here: " + err.split("(known here: ")[1])
    assert cli_main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config not found" in capsys.readouterr().err


def test_cli_trains_a_step(tiny_dict, tmp_path, capsys):
    path = tmp_path / "run.yaml"
    config = tiny_dict({"model": {"gradient_checkpointing": True},
                        "train": {"num_threads": 1, "sample_every": 1, "sample_steps": 2}})
    path.write_text(yaml.safe_dump(config))
    before = torch.get_num_threads()
    try:
        assert cli_main(["train", "--config", str(path), "--max-steps", "1", "--output-dir",
                         str(tmp_path / "out")]) == 0
    finally:
        torch.set_num_threads(before)
    assert "trained to step 1" in capsys.readouterr().out
    assert (tmp_path / "out/unet/config.json").is_file()
    assert (tmp_path / "out/samples/step-00000001.mp4").stat().st_size > 0  # the preview denoise ran
    assert list((tmp_path / "out/logs/m3ddm").glob("events.out.tfevents.*"))
    assert (tmp_path / "out/checkpoints/step-00000001/trainer_state.json").is_file()
    assert np.isfinite(loop.ckpt.TrainerState.from_file(
        tmp_path / "out/checkpoints/step-00000001/trainer_state.json").step)


def test_the_exported_context_encoding_follows_the_training_data_and_hidden_context(tiny_dict):
    assert config_from_dict(tiny_dict({})).pipeline_settings() == {}
    cached = {"data": {"latent_cache": "cache"}}
    assert config_from_dict(tiny_dict(cached)).pipeline_settings() == {"context_encoding": "latent_mask"}
    smooth = config_from_dict(tiny_dict({**cached, "model": {"hidden_context": "smooth"}}))
    assert smooth.pipeline_settings() == {"context_encoding": "latent_fill"}
    relative = config_from_dict(tiny_dict({**cached, "model": {"hidden_context": "smooth",
                                                                "relative_to_context": True}}))
    assert relative.pipeline_settings() == {"context_encoding": "latent_fill", "relative_to_context": True}
    # without a latent cache the pixels are filled before encoding: the pipeline encodes its pre-filled canvas
    assert config_from_dict(tiny_dict({"model": {"hidden_context": "smooth"}})).pipeline_settings() == {
        "context_encoding": "latent_prefill"}
