"""The mask-modeling recipe: frequencies over 20,000 draws, ratio bounds, pixel masks."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from m3ddm.training.masking import (
    GUIDE_CASES,
    STRATEGIES,
    MaskPlan,
    MaskProbabilities,
    latent_mask_from_pixels,
    plan_pixel_mask,
    sample_mask_plan,
    side_extents,
)

N = 20_000
TOL = 0.015  # 1.5 points
F = 16


@pytest.fixture(scope="module")
def plans() -> list[MaskPlan]:
    rng = np.random.default_rng(1234)
    return [sample_mask_plan(rng, F) for _ in range(N)]


def share(values, key) -> float:
    return sum(1 for v in values if v == key) / len(values)


def test_strategy_frequencies(plans):
    probs = MaskProbabilities()
    for name in STRATEGIES:
        assert abs(share([p.strategy for p in plans], name) - probs.strategies[name]) < TOL, name


def test_guide_case_and_dropout_frequencies(plans):
    probs = MaskProbabilities()
    for name in GUIDE_CASES:
        assert abs(share([p.guide_case for p in plans], name) - probs.guide_cases[name]) < TOL, name
    assert abs(np.mean([p.drop_context for p in plans]) - 0.35) < TOL
    assert abs(np.mean([p.drop_global for p in plans]) - 0.10) < TOL


def test_guide_frames_follow_their_case(plans):
    first_only = first_and_last = 0
    random_flags = []
    for p in plans:
        assert len(p.guide_frames) == F
        if p.guide_case == "none":
            assert not any(p.guide_frames)
        elif p.guide_case == "first_last":
            assert p.guide_frames[0] and not any(p.guide_frames[1:-1])
            first_and_last += p.guide_frames[-1]
            first_only += not p.guide_frames[-1]
        else:
            random_flags.extend(p.guide_frames)
    assert abs(first_only / (first_only + first_and_last) - 0.5) < 0.03
    assert abs(np.mean(random_flags) - 0.5) < TOL  # p_frame


def test_sides_and_ratios(plans):
    per_strategy = collections.defaultdict(collections.Counter)
    ratios = []
    for p in plans:
        key = tuple(sorted(p.sides))
        per_strategy[p.strategy][key] += 1
        ratios.extend(p.sides.values())
        if p.strategy == "all":
            assert p.sides == {} and p.masks_all
        else:
            assert not p.masks_all
    assert all(0.15 <= r <= 0.75 for r in ratios)
    assert abs(np.mean(ratios) - 0.45) < 0.01  # uniform on [0.15, 0.75]
    assert set(per_strategy["four"]) == {("bottom", "left", "right", "top")}
    assert set(per_strategy["one"]) == {("left",), ("top",), ("right",), ("bottom",)}
    assert set(per_strategy["two"]) == {("left", "right"), ("bottom", "top")}
    random_subsets = set(per_strategy["random"])
    assert len(random_subsets) == 8  # 4 corners + 4 triples
    # distinct from the other strategies: no single side, no opposite pair, not all four
    others = set(per_strategy["one"]) | set(per_strategy["two"]) | set(per_strategy["four"])
    assert not random_subsets & others
    for counter in per_strategy.values():  # uniform choice inside each strategy
        counts = np.array(list(counter.values()), dtype=float)
        expected = counts.sum() / len(counts)
        assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)


def test_pixel_masks_leave_a_known_rectangle(plans):
    h, w = 48, 80
    for p in plans[:3000]:
        mask = plan_pixel_mask(p, h, w)
        assert mask.shape == (h, w) and mask.dtype == np.float32
        if p.masks_all:
            assert mask.min() == 1.0
            continue
        known = np.argwhere(mask == 0)
        top, left = known.min(0)
        bottom, right = known.max(0)
        assert (mask[top: bottom + 1, left: right + 1] == 0).all()  # one rectangle
        assert (bottom - top + 1) >= 0.25 * h - 1 and (right - left + 1) >= 0.25 * w - 1
        for side in ("left", "top", "right", "bottom"):  # a masked side touches its border, others don't
            edge = {"left": mask[:, 0], "right": mask[:, -1], "top": mask[0], "bottom": mask[-1]}[side]
            assert bool(edge.all()) == (side in p.sides)


def test_ratio_semantics():
    one = MaskPlan("one", {"right": 0.5}, "none", [False] * 4, False, False)
    assert side_extents(one, 40, 100) == {"left": 0, "top": 0, "right": 50, "bottom": 0}
    two = MaskPlan("two", {"left": 0.4, "right": 0.6}, "none", [False] * 4, False, False)
    mask = plan_pixel_mask(two, 10, 100)
    assert mask[:, :20].min() == 1 and mask[:, 20:70].max() == 0 and mask[:, 70:].min() == 1
    everything = MaskPlan("all", {}, "none", [False] * 4, False, False)
    assert plan_pixel_mask(everything, 5, 7).min() == 1


def test_plans_are_reproducible_and_need_numpy_generators():
    a = [sample_mask_plan(np.random.default_rng(7), 16) for _ in range(3)]
    b = [sample_mask_plan(np.random.default_rng(7), 16) for _ in range(3)]
    assert a == b
    with pytest.raises(TypeError):
        import torch

        sample_mask_plan(torch.Generator(), 16)


def test_custom_probabilities_and_variants():
    rng = np.random.default_rng(0)
    probs = MaskProbabilities(strategies={"four": 0, "one": 0, "two": 1.0, "random": 0, "all": 0},
                              p_drop_context=0.0, p_drop_global=1.0)
    for _ in range(200):
        plan = sample_mask_plan(rng, 8, probs)
        assert plan.strategy == "two" and not plan.drop_context and plan.drop_global
    sdm = MaskProbabilities().for_variant("sdm")
    for _ in range(200):
        plan = sample_mask_plan(rng, 8, sdm)
        assert plan.guide_frames == [True] + [False] * 6 + [True] and not plan.drop_global
    assert MaskProbabilities().for_variant("msdm").p_drop_global == 0.0
    bad = MaskProbabilities(strategies={"four": 0.5, "one": 0.1, "two": 0.35, "random": 0.1, "all": 0.25})
    assert any("sum to 1" in p for p in bad.problems())
    assert MaskProbabilities(ratio_range=(0.8, 0.2)).problems()


def test_latent_mask_is_the_inference_nearest_rule():
    mask = np.zeros((64, 64), np.float32)
    mask[:, :9] = 1  # columns 0..8: latent cells 0 (pixel 0) and 1 (pixel 8)
    lm = latent_mask_from_pixels(mask, 8)
    assert lm.shape == (8, 8)
    assert lm[:, :2].min() == 1 and lm[:, 2:].max() == 0
