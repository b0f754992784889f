"""Mask modeling (paper section 3.2): which borders to hide, which frames to give raw, what to drop.

``sample_mask_plan`` draws everything for one training clip from a **numpy** ``Generator`` (numpy, not torch,
so that DataLoader workers can derive one independent, picklable stream per sample from ``(seed, sample)``).

Conventions
-----------
* Strategies (paper: 0.2 / 0.1 / 0.35 / 0.1 / 0.25):
    ``four``   all four sides;
    ``one``    one side, uniformly;
    ``two``    two opposite sides, left+right or top+bottom (50/50);
    ``random`` a random subset of sides that no other strategy produces: one of the 8 subsets made of two
               *adjacent* sides (a corner, 4 of them) or of three sides (4 of them), uniformly. Single sides,
               opposite pairs and all four sides belong to ``one``, ``two`` and ``four``, so the five
               strategies stay distinct;
    ``all``    everything is to be generated (unconditional generation for classifier-free guidance). An
               explicit strategy with an **empty** ``sides`` dict; ``plan.masks_all`` is True.
* Ratios: every masked side draws its own ratio from U[0.15, 0.75]. A side's ratio is the share of the frame's
  extent along its axis that the side masks, divided by the number of masked sides on that axis: one side of
  ratio r hides r*W columns; left and right of ratios r_l, r_r hide r_l*W/2 and r_r*W/2. The masked share
  along an axis is thus the mean of its ratios, within [0.15, 0.75]: a quarter of each axis stays known.
* Guide frames (0.3 / 0.35 / 0.35): ``none``; ``first_last`` = the first frame only, or the first and the last
  frame (``first_only_share`` splits the two, 0.5 by default); ``random`` = each frame with ``p_frame``.
  A guide frame is given raw: mask 0 and its full latent as context.
* Guidance dropout: ``drop_context`` with p1 (null local condition = black-frame latent + all-ones mask,
  guides kept, exactly as inference builds its unconditional branch), ``drop_global`` with p2 (global
  latents replaced by zeros that still go through the encoder). Drawn independently.
* One plan per clip: the same pixel mask applies to every frame and to the clip's global frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SIDES = ("left", "top", "right", "bottom")
STRATEGIES = ("four", "one", "two", "random", "all")
GUIDE_CASES = ("none", "first_last", "random")
VARIANTS = ("m3ddm", "msdm", "sdm")

# Subsets for the "random" strategy: corners (two adjacent sides) and triples.
_RANDOM_SUBSETS: tuple[tuple[str, ...], ...] = (
    ("left", "top"), ("top", "right"), ("right", "bottom"), ("bottom", "left"),
    ("left", "top", "right"), ("top", "right", "bottom"),
    ("right", "bottom", "left"), ("bottom", "left", "top"),
)
_OPPOSITE_PAIRS = (("left", "right"), ("top", "bottom"))


def _default_strategies() -> dict[str, float]:
    return {"four": 0.2, "one": 0.1, "two": 0.35, "random": 0.1, "all": 0.25}


def _default_guide_cases() -> dict[str, float]:
    return {"none": 0.3, "first_last": 0.35, "random": 0.35}


@dataclass
class MaskProbabilities:
    """All probabilities of the mask-modeling recipe; defaults are the paper's."""

    strategies: dict[str, float] = field(default_factory=_default_strategies)
    ratio_range: tuple[float, float] = (0.15, 0.75)
    guide_cases: dict[str, float] = field(default_factory=_default_guide_cases)
    first_only_share: float = 0.5  # within "first_last": P(first frame only); else first and last
    p_frame: float = 0.5  # "random" guide case: P(a frame is given raw)
    p_drop_context: float = 0.35  # p1
    p_drop_global: float = 0.1  # p2

    def problems(self) -> list[str]:
        """Human-readable reasons why these probabilities are impossible (empty when valid)."""
        out = []
        tables = (("strategies", self.strategies, STRATEGIES), ("guide_cases", self.guide_cases, GUIDE_CASES))
        for name, table, keys in tables:
            unknown = sorted(set(table) - set(keys))
            if unknown:
                out.append(f"masking.{name}: unknown entries {unknown} (allowed: {list(keys)})")
            values = [float(v) for v in table.values()]
            if any(not 0.0 <= v <= 1.0 for v in values):
                out.append(f"masking.{name}: every probability must be within [0, 1]")
            elif abs(sum(values) - 1.0) > 1e-6:
                out.append(f"masking.{name}: probabilities must sum to 1 (got {sum(values):.6g})")
        lo, hi = self.ratio_range
        if not 0.0 < lo <= hi < 1.0:
            out.append(f"masking.ratio_range must satisfy 0 < low <= high < 1 (got {lo}, {hi})")
        for name in ("first_only_share", "p_frame", "p_drop_context", "p_drop_global"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                out.append(f"masking.{name} must be within [0, 1] (got {value})")
        return out

    def for_variant(self, variant: str) -> MaskProbabilities:
        """The recipe an ablation variant actually trains with (paper Table 2).

        ``msdm`` has no global prompt, so nothing to drop there. ``sdm`` uses the first and last frames as its
        only guides (no random guide frames: no mask modeling of the context) and no global prompt.
        """
        if variant == "m3ddm":
            return self
        if variant == "msdm":
            return MaskProbabilities(dict(self.strategies), self.ratio_range, dict(self.guide_cases),
                                     self.first_only_share, self.p_frame, self.p_drop_context, 0.0)
        if variant == "sdm":
            return MaskProbabilities(dict(self.strategies), self.ratio_range,
                                     {"none": 0.0, "first_last": 1.0, "random": 0.0},
                                     0.0, self.p_frame, self.p_drop_context, 0.0)
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


@dataclass(frozen=True)
class MaskPlan:
    """Everything random about one training clip's conditioning."""

    strategy: str
    sides: dict[str, float]  # side -> ratio in ratio_range; empty for "all"
    guide_case: str
    guide_frames: list[bool]
    drop_context: bool
    drop_global: bool

    @property
    def masks_all(self) -> bool:
        return self.strategy == "all"


def _choose(rng: np.random.Generator, table: dict[str, float], order: tuple[str, ...]) -> str:
    """Inverse-CDF draw over ``order`` (a fixed order keeps plans reproducible whatever the dict order)."""
    u = rng.random()
    acc = 0.0
    last = None
    for name in order:
        p = float(table.get(name, 0.0))
        if p <= 0.0:
            continue
        acc += p
        last = name
        if u < acc:
            return name
    if last is None:
        raise ValueError("all probabilities are zero")
    return last  # rounding: u landed in the last sliver


def _strategy_sides(rng: np.random.Generator, strategy: str) -> tuple[str, ...]:
    if strategy == "four":
        return SIDES
    if strategy == "one":
        return (SIDES[int(rng.integers(4))],)
    if strategy == "two":
        return _OPPOSITE_PAIRS[int(rng.integers(2))]
    if strategy == "random":
        return _RANDOM_SUBSETS[int(rng.integers(len(_RANDOM_SUBSETS)))]
    return ()  # "all"


def sample_mask_plan(
    generator: np.random.Generator, num_frames: int, probs: MaskProbabilities | None = None
) -> MaskPlan:
    """Draw one clip's mask strategy, side ratios, guide frames and guidance dropout (see module docstring).

    ``generator`` is a ``numpy.random.Generator``; the draws happen in a fixed order, so a plan is a pure
    function of the generator's state.
    """
    if not isinstance(generator, np.random.Generator):
        raise TypeError("sample_mask_plan takes a numpy.random.Generator (numpy.random.default_rng(seed))")
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    probs = probs or MaskProbabilities()
    strategy = _choose(generator, probs.strategies, STRATEGIES)
    lo, hi = probs.ratio_range
    sides = {side: float(generator.uniform(lo, hi)) for side in _strategy_sides(generator, strategy)}

    guide_case = _choose(generator, probs.guide_cases, GUIDE_CASES)
    guides = [False] * num_frames
    if guide_case == "first_last":
        guides[0] = True
        if generator.random() >= probs.first_only_share:
            guides[-1] = True
    elif guide_case == "random":
        guides = [bool(x) for x in generator.random(num_frames) < probs.p_frame]

    drop_context = bool(generator.random() < probs.p_drop_context)
    drop_global = bool(generator.random() < probs.p_drop_global)
    return MaskPlan(strategy, sides, guide_case, guides, drop_context, drop_global)


def side_extents(plan: MaskPlan, height: int, width: int) -> dict[str, int]:
    """Pixels masked from each side (0 for unmasked sides); for "all" every side covers the whole frame."""
    if plan.masks_all:
        return {"left": width, "right": width, "top": height, "bottom": height}
    out = dict.fromkeys(SIDES, 0)
    for axis_sides, length in ((("left", "right"), width), (("top", "bottom"), height)):
        masked = [s for s in axis_sides if s in plan.sides]
        for side in masked:
            out[side] = int(round(plan.sides[side] * length / len(masked)))
    return out


def plan_pixel_mask(plan: MaskPlan, height: int, width: int) -> np.ndarray:
    """The plan's mask for an ``(height, width)`` frame: float32, 1 = to generate, 0 = known context."""
    mask = np.zeros((height, width), dtype=np.float32)
    ext = side_extents(plan, height, width)
    mask[:, : ext["left"]] = 1.0
    mask[: ext["top"], :] = 1.0
    mask[:, width - ext["right"]:] = 1.0  # extent 0 gives the empty slice [width:]
    mask[height - ext["bottom"]:, :] = 1.0
    return mask


def latent_mask_from_pixels(mask, factor: int):
    """Nearest-neighbour downsampling used by inference (spec 8.3): latent cell i takes pixel ``factor * i``.

    Works on numpy arrays and torch tensors whose last two axes are (H, W).
    """
    return mask[..., ::factor, ::factor]
