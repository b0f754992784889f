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


def test_a_stage_called_inside_itself_is_counted_once():
    """The propagation calls its fill, both timed as the pre-fill: the inner call's time is not added twice."""
    import time as clock_time

    from m3ddm.benchmarks.stages import StageClock

    clock = StageClock()
    # a clock that advances one second per reading: each timed call adds (readings between start and end)
    ticks = iter(range(1000))
    real = clock_time.perf_counter
    clock_time.perf_counter = lambda: float(next(ticks))
    try:
        inner = clock.timed("compose", lambda: None)
        outer = clock.timed("compose", lambda: inner())
        outer()
    finally:
        clock_time.perf_counter = real
    assert clock.seconds["compose"] == 1.0  # the outer call's two readings only
