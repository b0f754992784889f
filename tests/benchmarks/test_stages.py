"""`m3ddm bench stages`: the stage split adds up, every stage is seen, and the patches are undone."""

import json

import pytest

from m3ddm.benchmarks.models import tiny_pipeline
from m3ddm.benchmarks.stages import STAGES, bench_stages
from m3ddm.cli import main
from m3ddm.codecs import LatentCodec
from m3ddm.io.video import VideoWriter


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny"
    # the shipped model's pre-fill and keep-seen, so every stage runs
    tiny_pipeline(default_size=96, default_steps=1, default_prefill="propagate",
                  default_keep_seen=True).save_pretrained(path)
    return str(path)


def test_the_stages_add_up_to_the_run_and_each_is_seen(tiny_dir):
    encode, write = LatentCodec.encode, VideoWriter.write
    result = bench_stages(model=tiny_dir, frames=20, source_size=(64, 48), threads=1)
    rows = {row["stage"]: row["seconds"] for row in result["stages"]}
    total = rows.pop("total, stages one after another")
    assert set(STAGES) <= set(rows)
    assert all(rows[stage] > 0 for stage in STAGES), rows
    assert sum(rows.values()) == pytest.approx(total)
    assert rows["other (sampler, guidance, bookkeeping)"] >= 0
    assert result["unet_calls"] > 0 and result["output"] == "64x114", result["output"]
    assert LatentCodec.encode is encode and VideoWriter.write is write, "the timing wrappers are removed"


def test_the_command_prints_the_table_and_the_verdict(tiny_dir, capsys):
    assert main(["bench", "stages", "--model", tiny_dir, "--frames", "8", "--source-size", "64x48",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "UNet" in out and "VAE decode" in out and "180 s budget" in out
    assert main(["bench", "stages", "--model", tiny_dir, "--frames", "8", "--source-size", "64x48", "--threads",
                 "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 8 and len(report["stages"]) == len(STAGES) + 2


def test_the_clock_times_an_object_method_and_leaves_nothing_behind():
    from m3ddm.benchmarks.stages import StageClock

    class Model:
        def denoise(self, x):
            return x + 1

    model, clock = Model(), StageClock()
    clock.patch(model, "denoise", "UNet")
    assert model.denoise(1) == 2 and clock.seconds["UNet"] > 0
    clock.restore()
    assert "denoise" not in vars(model) and model.denoise(1) == 2
