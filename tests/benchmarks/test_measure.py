"""The measuring pieces of the benchmarks: peak memory, FLOP counting, call recording, PSNR, tables."""

import math

import numpy as np
import pytest
import torch

from m3ddm.benchmarks.flops import UNetCallRecorder, attention_backend, count_flops, count_unet_flops
from m3ddm.benchmarks.measure import allocation_task, run_isolated, timed_repeats
from m3ddm.benchmarks.models import region_psnr
from m3ddm.benchmarks.table import format_table
from m3ddm.benchmarks.unet import guidance_rows
from m3ddm.errors import UserError
from m3ddm.models import GlobalContext, M3DDMUNet


def test_peak_memory_sees_an_allocation_in_a_fresh_process():
    small = run_isolated("m3ddm.benchmarks.measure:allocation_task", {"megabytes": 4})
    large = run_isolated("m3ddm.benchmarks.measure:allocation_task", {"megabytes": 64})
    assert 60 <= large["work_mb"] <= 90
    assert small["work_mb"] < 20
    assert large["peak_mb"] > small["peak_mb"] + 50


def test_peak_memory_in_process_is_reset_between_measurements():
    first = allocation_task(48)
    second = allocation_task(8)
    assert 44 <= first["work_mb"] <= 70
    if not second["peak_is_lifetime"]:  # Linux: the high-water mark was reset, the 48 MB peak is gone
        assert second["work_mb"] < 30


def test_a_user_error_in_the_child_comes_back_as_a_user_error():
    with pytest.raises(UserError, match="cannot allocate -1 MB"):
        run_isolated("m3ddm.benchmarks.measure:allocation_task", {"megabytes": -1})


def test_count_flops_of_a_linear_layer_is_two_per_multiply_add():
    layer = torch.nn.Linear(7, 5)
    x = torch.randn(3, 7)
    assert count_flops(lambda: layer(x)) == 2 * 3 * 7 * 5


def test_timed_repeats_times_each_call_after_the_warmup():
    """A fake clock that the timed function advances: call k takes k seconds; warmup calls are not timed."""
    now = [0.0]
    calls = []

    def work():
        calls.append(1)
        now[0] += len(calls)

    times = timed_repeats(work, repeats=3, warmup=2, clock=lambda: now[0])
    assert len(calls) == 5 and times == [3.0, 4.0, 5.0]


@pytest.fixture(scope="module")
def tiny_unet():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the UNet is tiny: a second thread only adds contention on a shared machine
    torch.manual_seed(0)
    yield M3DDMUNet.from_preset("tiny").eval()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def context(tiny_unet):
    with torch.no_grad():
        real = tiny_unet.encode_global(torch.randn(4, 4, 8, 8), 4)
        null = tiny_unet.encode_global(torch.zeros(4, 4, 8, 8), 4)
    return GlobalContext(torch.cat([null, real]))


@pytest.fixture(scope="module")
def flops_by_rows(tiny_unet, context):
    """FLOPs of one call with 3 and with 6 rows (2 frames of 8x8 latents)."""
    return {rows: count_unet_flops(tiny_unet, torch.randn(rows, 9, 2, 8, 8), 500, torch.ones(rows), context,
                                   guidance_rows(rows))
            for rows in (3, 6)}


def test_unet_flops_scale_with_rows(flops_by_rows, tiny_unet):
    # twice the rows: twice the convolutions and products, except the once-per-call context keys/values
    assert 1.8 < flops_by_rows[6] / flops_by_rows[3] <= 2.0
    assert attention_backend(tiny_unet) == "sdpa"  # counting (with the naive backend) switched it back


def test_call_recorder_counts_calls_rows_and_their_flops(tiny_unet, context, flops_by_rows):
    a, b = torch.randn(3, 9, 2, 8, 8), torch.randn(6, 9, 2, 8, 8)
    with torch.no_grad(), UNetCallRecorder(tiny_unet) as calls:
        for sample in (a, a, b):
            rows = sample.shape[0]
            out = tiny_unet.denoise(sample, 500, torch.ones(rows), context, guidance_rows(rows))
            assert out.shape == (rows, 4, 2, 8, 8)
    assert "denoise" not in vars(tiny_unet)  # the wrapper is gone
    assert calls.num_calls == 3 and calls.num_rows == 3 + 3 + 6
    assert calls.flops() == 2 * flops_by_rows[3] + flops_by_rows[6]


def test_guidance_rows_are_branch_major():
    assert guidance_rows(3) == [0, 0, 1]
    assert guidance_rows(6) == [0, 0, 0, 0, 1, 1]


def test_region_psnr_counts_only_the_masked_pixels():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    assert region_psnr(a, b) == (math.inf, 0)
    b[:, 0, 0] = 10  # outside the mask below
    mask = np.zeros((4, 4), np.uint8)
    mask[2:, :] = 1
    assert region_psnr(a, b, mask) == (math.inf, 0)
    psnr, diff = region_psnr(a, b)
    assert diff == 10 and psnr == pytest.approx(10 * np.log10(255**2 / (100 / 16)))


def test_table_aligns_columns_and_names_identical_outputs():
    text = format_table([{"a": "x", "b": 1.23456}, {"a": "longer", "b": math.inf}],
                        [("a", "name", ""), ("b", "value", ".2f")])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert "1.23" in lines[2] and "identical" in lines[3]
