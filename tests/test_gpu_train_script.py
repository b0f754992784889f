"""scripts/device/gpu_train_v5.py: its config is the default model's recipe on a wider UNet, what it sends back fits
the device tool's limits and comes back as the weights that were trained, and training runs without PyAV."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_train_v5", REPO / "scripts" / "device" / "gpu_train_v5.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_gpu_config_is_the_recipe_on_a_wider_unet(script, tmp_path, monkeypatch):
    import yaml

    from m3ddm.training.config import config_from_dict

    monkeypatch.chdir(REPO)
    config = config_from_dict(script.training_dict(False, 3000, tmp_path / "run", tmp_path / "cache"))
    recipe = yaml.safe_load((REPO / "src/m3ddm/configs/default-v4.yaml").read_text())
    assert config.model.overrides["block_out_channels"] == script.WIDTHS
    assert (config.model.prediction_type, config.model.zero_terminal_snr, config.model.timestep_spacing) == (
        recipe["model"]["prediction_type"], recipe["model"]["zero_terminal_snr"], recipe["model"]["timestep_spacing"])
    assert config.masking.p_drop_context == recipe["masking"]["p_drop_context"]
    assert (config.train.mixed_precision, config.train.cpu, config.train.batch_size) == ("bf16", False, 64)
    assert config.data.synthetic is not None and config.data.root is None


def test_a_tiny_run_without_pyav_comes_back_as_its_weights(script, tmp_path):
    """The dry run's path (PyAV hidden as on the device): trained weights, sent back in shards under 16 MiB, then
    assembled into an inference folder whose UNet is the run's EMA UNet (to float16)."""
    out = tmp_path / "out"
    code = (f"import sys; sys.argv = ['gpu_train_v5.py', 'train', '--quick', '--minutes', '0.15', '--work', "
            f"{str(tmp_path / 'work')!r}, '--out', {str(out)!r}]; "
            "import av; assert not hasattr(av, '__file__') or 'stubs' in av.__file__; "
            "import runpy; runpy.run_path('scripts/device/gpu_train_v5.py', run_name='__main__')")
    env = {"PYTHONPATH": f"{REPO / 'scripts/device/stubs'}:{REPO / 'src'}", "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert "summary.json" in files and any(name.startswith("unet_ema-") for name in files)
    assert len(files) <= 8 and all((out / name).stat().st_size < 16 * 2**20 for name in files)

    from m3ddm.models import M3DDMUNet
    from m3ddm.training import checkpoint as ckpt
    from m3ddm.training.snapshot import unet_from_checkpoint

    pipe = tmp_path / "pipe"
    subprocess.run([sys.executable, "scripts/device/gpu_train_v5.py", "assemble", str(out), str(pipe)], cwd=REPO,
                   check=True, capture_output=True)
    trained = unet_from_checkpoint(ckpt.latest_checkpoint(tmp_path / "work" / "run"), averaged=True).state_dict()
    assembled = M3DDMUNet.from_pretrained(pipe / "unet").state_dict()
    assert trained.keys() == assembled.keys()
    assert all(torch.equal(trained[k].half().float(), assembled[k]) for k in trained)
    from m3ddm.training.snapshot import read_snapshot

    facts = read_snapshot(pipe.with_name("pipe-snapshot"))  # a snapshot a warm start reads
    assert facts.step == int(ckpt.latest_checkpoint(tmp_path / "work" / "run").name.split("-")[1])
    assert facts.clips_seen > 0


def test_the_pyav_stand_in_says_what_is_missing():
    code = "import av; av.open('x.mp4')"
    done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(REPO / "scripts/device/stubs")},
                          capture_output=True, text=True)
    assert done.returncode != 0 and "PyAV is not installed on this machine (av.open was called)" in done.stderr
