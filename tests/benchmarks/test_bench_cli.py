"""`m3ddm bench unet | memory | official` end to end at minimal sizes (behaviour and keys, never timings)."""

import json

import pytest
import torch

from m3ddm.benchmarks.official import CONFIG_COLUMNS, LEVER_COLUMNS, config_rows, lever_rows
from m3ddm.benchmarks.table import format_table
from m3ddm.cli import main
from m3ddm.models import M3DDMUNet
from m3ddm.models.unet import count_parameters


def run_json(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_bench_unet_json(capsys):
    out = run_json(capsys, ["bench", "unet", "--presets", "tiny", "--frames", "2", "--latent", "8", "--repeats", "2",
                            "--threads", "1", "--in-process", "--json"])
    (result,) = out["results"]
    assert result["preset"] == "tiny"
    assert result["params"] == count_parameters(M3DDMUNet.from_preset("tiny"))
    assert result["batch"] == 3 and result["frames"] == 2 and result["latent"] == 8
    assert len(result["times_s"]) == 2 and all(t > 0 for t in result["times_s"])
    assert min(result["times_s"]) <= result["median_s"] <= max(result["times_s"])
    assert result["flops"] > 0 and result["peak_mb"] > 0 and result["work_mb"] >= 0
    assert result["threads"] == 1


def test_bench_unet_table(capsys):
    assert main(["bench", "unet", "--presets", "tiny", "--frames", "1", "--latent", "6", "--repeats", "1",
                 "--threads", "1", "--in-process"]) == 0
    text = capsys.readouterr().out
    assert "preset" in text and "GFLOP/call" in text and "tiny" in text


def test_bench_memory_json(capsys):
    out = run_json(capsys, ["bench", "memory", "--frames", "3,6", "--source-size", "64x48", "--size", "88",
                            "--threads", "1", "--in-process", "--json"])
    short, long = out["runs"]
    assert (short["frames"], long["frames"]) == (3, 6)
    assert short["unet_calls"] > 0 and long["unet_calls"] >= short["unet_calls"]
    assert short["wall_s"] > 0 and short["peak_mb"] > 0 and short["output_bytes"] > 0
    assert out["ratio_peak"] == pytest.approx(long["peak_mb"] / short["peak_mb"])
    assert out["limit"] == 1.2 and out["within_limit"] == (out["ratio_peak"] <= 1.2)


@pytest.fixture(scope="module")
def official_report():
    import contextlib
    import io

    argv = ["bench", "official", "--frames", "8", "--size", "88", "--official-steps", "2", "--fast-steps", "1",
            "--ours-steps", "1", "--threads", "1", "--in-process", "--json"]
    buffer = io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    assert torch.get_num_threads() == threads  # --threads applied to the benchmark only
    return json.loads(buffer.getvalue())


def test_bench_official_compares_the_two_configurations(official_report):
    official, ours = official_report["official"], official_report["ours"]
    assert official["canvas"] == [88, 88] and ours["canvas"] == [48, 88]  # square vs 9:16 target canvas
    assert official["output"] == ours["output"]
    assert (official["scheduler"], official["steps"], official["branches"]) == ("pndm", 2, 4)
    assert (ours["scheduler"], ours["steps"], ours["branches"]) == ("dpmpp", 1, 3)
    assert official["rows"] == 4 * official["unet_calls"] and ours["rows"] == 3 * ours["unet_calls"]
    for result in (official, ours):
        assert result["frames"] == 8 and result["wall_s"] > 0 and result["peak_mb"] > 0
        assert result["flops_per_frame"] == pytest.approx(result["flops"] / 8)
    assert official_report["ratio_flops"] > 1 and official_report["ratio_rows"] > 1
    assert official_report["ratio_wall"] > 0
    assert official_report["ratio_flops"] == pytest.approx(official["flops"] / ours["flops"])


def test_bench_official_levers(official_report):
    levers = {lever["lever"]: lever for lever in official_report["levers"]}
    assert set(levers) == {"3-branch guidance", "cached global context", "target canvas", "batched windows",
                           "sdpa attention", "dpmpp 1 steps", "background I/O thread", "bfloat16 weights",
                           "VAE slicing (1 frame per call)", "VAE tiling"}
    assert levers["3-branch guidance"]["ratio_flops"] == pytest.approx(4 / 3, rel=0.05)
    assert levers["3-branch guidance"]["ratio_rows"] == pytest.approx(4 / 3)
    assert levers["target canvas"]["ratio_flops"] > 1.5  # 48x88 instead of 88x88 pixels
    assert levers["cached global context"]["ratio_flops"] > 1  # no context key/values per call
    assert levers["sdpa attention"]["ratio_flops"] == pytest.approx(1)
    assert levers["dpmpp 1 steps"]["ratio_rows"] == pytest.approx(2)
    for name in ("3-branch guidance", "cached global context", "batched windows", "sdpa attention",
                 "background I/O thread", "VAE slicing (1 frame per call)"):
        lever = levers[name]
        assert lever["should_match"] and lever["matches"], name
        assert lever["psnr_vs_official"] is None or lever["psnr_vs_official"] > 40  # None: bit-identical
    assert levers["target canvas"]["max_abs_diff"] > 0 and not levers["target canvas"]["should_match"]
    bf16 = levers["bfloat16 weights"]
    assert bf16["result"]["dtype"] == "bfloat16" and official_report["official"]["dtype"] == "float32"
    assert bf16["ratio_flops"] == pytest.approx(1) and not bf16["should_match"]
    tiling = levers["VAE tiling"]  # 88x88 canvas, 32-pixel tiles: blended tiles change the pixels a little
    assert not tiling["should_match"] and tiling["max_abs_diff"] > 0 and tiling["ratio_flops"] == pytest.approx(1)


def test_bench_official_tables(official_report):
    configs = format_table(config_rows(official_report), CONFIG_COLUMNS).splitlines()
    assert configs[0].split()[0] == "configuration" and len(configs) == 5  # header, rule, official, ours, ratio
    assert "88x88" in configs[2] and "48x88" in configs[3] and "x" in configs[4].split()[-1]
    levers = format_table(lever_rows(official_report), LEVER_COLUMNS)
    assert levers.count("same (ok)") == 6 and levers.count("changes") == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "unet", "--presets", "huge", "--in-process"],
        ["bench", "memory", "--frames", "10", "--in-process"],
        ["bench", "memory", "--frames", "10,x", "--in-process"],
        ["bench", "official", "--frames", "0", "--in-process"],
        ["bench", "official", "--steps-scale", "0", "--in-process"],
        ["bench", "official", "--model", "/nonexistent/model", "--in-process"],
    ],
)
def test_bench_user_errors_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("m3ddm bench: error:") and len(err.strip().splitlines()) == 1
