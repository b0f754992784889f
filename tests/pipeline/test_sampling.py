"""Two-condition guidance (eq. 4) from three branches, and the scheduler wrappers."""

import pytest
import torch

from m3ddm.errors import UserError
from m3ddm.models import GlobalContext
from m3ddm.sampling import Guidance, WindowBatch, guided_epsilon, make_scheduler, sample_windows
from m3ddm.schedule import NoiseSchedule


def _batch(windows=2, frames=3, h=8, w=8):
    g = torch.Generator().manual_seed(0)
    rand = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    mask = torch.ones(windows, 1, frames, h, w)
    mask[:, :, :, :, 2:6] = 0
    return WindowBatch(context=rand(windows, 4, frames, h, w), mask=mask, null_context=rand(windows, 4, frames, h, w),
                       null_mask=torch.ones_like(mask), init_latents=torch.zeros(windows, 4, frames, h, w),
                       fps=torch.full((windows,), 5), context_rows=torch.tensor([1, 2][:windows]))


class CountingUNet:
    """Wraps a UNet and records how many rows each call evaluates."""

    def __init__(self, unet):
        self.unet, self.rows = unet, []
        self.config = unet.config

    def denoise(self, sample, *args, **kwargs):
        self.rows.append(sample.shape[0])
        return self.unet.denoise(sample, *args, **kwargs)


@torch.no_grad()
def test_three_branches_equal_eq4_from_four_branches(tiny_pipeline):
    unet = tiny_pipeline.unet
    batch = _batch()
    tokens = torch.randn(3, 16, 320)  # rows: null, video A, video B
    context = GlobalContext(tokens)
    x = torch.randn(2, 4, 3, 8, 8)
    guidance = Guidance(2.0, 4.0)
    counting = CountingUNet(unet)
    eps = guided_epsilon(counting, x, torch.tensor(501), batch, guidance, context)
    assert counting.rows == [6]  # 3 branches x 2 windows in one call
    # The official way: four branches (local x global), then eq. 4.
    def branch(local, global_rows):
        ctx, mask = (batch.context, batch.mask) if local else (batch.null_context, batch.null_mask)
        sample = torch.cat([x, ctx, mask], dim=1)
        return unet.denoise(sample, 501, batch.fps, context, context_index=global_rows)

    null_rows, real_rows = torch.zeros(2, dtype=torch.long), batch.context_rows
    e00, e10, e11 = branch(False, null_rows), branch(True, null_rows), branch(True, real_rows)
    e01 = branch(False, real_rows)  # computed by the official code, unused by eq. 4
    s1, s2 = 2.0, 4.0
    want = e00 + s1 * (e10 - e00) + s2 * (e11 - e10)
    assert torch.allclose(eps, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(e01, e00)  # the branches really differ
    four = guided_epsilon(unet, x, torch.tensor(501), batch, guidance, context,
                          branches=("null", "local", "null_full", "full"))
    assert torch.allclose(four, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("s1", "s2", "rows"), [(1.0, 1.0, 2), (1.0, 4.0, 4), (2.0, 1.0, 6), (2.0, 4.0, 6)])
@torch.no_grad()
def test_only_needed_branches_run(tiny_pipeline, s1, s2, rows):
    counting = CountingUNet(tiny_pipeline.unet)
    guided_epsilon(counting, torch.randn(2, 4, 3, 8, 8), torch.tensor(11), _batch(), Guidance(s1, s2),
                   GlobalContext(torch.randn(3, 16, 320)))
    assert counting.rows == [rows]


def test_guidance_coefficients():
    assert Guidance(2, 4).coefficients(True) == {"null": -1.0, "local": -2.0, "full": 4.0}
    assert Guidance(1, 1).coefficients(True) == {"full": 1.0}
    assert Guidance(2, 4).coefficients(False) == {"null": -1.0, "local": 2.0}


def test_schedulers():
    for name in ("pndm", "ddim", "dpmpp", "euler"):
        sched = make_scheduler(name)
        sched.set_timesteps(10)
        assert len(sched.timesteps) >= 10
        assert sched.config.beta_schedule == "scaled_linear" and sched.config.num_train_timesteps == 1000
    pndm = make_scheduler("pndm")
    pndm.set_timesteps(50)
    # Official: 51 PLMS timesteps [981, 961, 961, 941, ..., 1]; the driver starts at index 1 (t = 961).
    assert pndm.timesteps[:4].tolist() == [981, 961, 961, 941] and pndm.timesteps[-1] == 1
    assert len(pndm.timesteps) == 51
    with pytest.raises(UserError, match="unknown scheduler"):
        make_scheduler("heun")


def test_window_noise_share_correlates_frames_and_keeps_unit_variance():
    from m3ddm.sampling import window_noise

    shape = (2, 4, 16, 24, 24)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    own = window_noise(shape, gens)
    assert torch.equal(own, window_noise(shape, [torch.Generator().manual_seed(i) for i in range(2)], share=0.0))
    shared = torch.randn(4, 1, 24, 24, generator=torch.Generator().manual_seed(9))
    mixed = window_noise(shape, [torch.Generator().manual_seed(i) for i in range(2)], shared=shared, share=0.8)
    assert abs(float(mixed.std()) - 1.0) < 0.05  # still unit variance per element
    frames = mixed.movedim(2, 0).reshape(16, -1)  # correlation between frames ~ the share, across windows too
    corr = torch.corrcoef(frames)
    off_diagonal = corr[~torch.eye(16, dtype=torch.bool)]
    assert 0.7 < float(off_diagonal.mean()) < 0.9
    assert float(torch.corrcoef(own.movedim(2, 0).reshape(16, -1))[0, 1].abs()) < 0.1
    with pytest.raises(UserError, match="noise share"):
        window_noise(shape, gens, shared=shared, share=1.0)
    with pytest.raises(ValueError, match="shared noise"):
        window_noise(shape, gens, share=0.5)
    # one share per window: a window with none keeps its own noise exactly, the other is mixed as with one share
    per_window = window_noise(shape, [torch.Generator().manual_seed(i) for i in range(2)], shared=shared,
                              share=[0.8, 0.0])
    assert torch.equal(per_window[0], mixed[0]) and torch.equal(per_window[1], own[1])
    with pytest.raises(UserError, match="noise share"):
        window_noise(shape, gens, shared=shared, share=[0.5, 1.0])


def test_make_scheduler_carries_the_whole_noise_schedule():
    from m3ddm.schedule import ZERO_SNR_V_SCHEDULE

    base = ZERO_SNR_V_SCHEDULE.config()
    for name in ("ddim", "dpmpp", "euler"):
        sched = make_scheduler(name, base)
        assert sched.config.prediction_type == "v_prediction", name
        assert sched.config.rescale_betas_zero_snr is True, name
        assert sched.config.timestep_spacing == "trailing", name
    ddim = make_scheduler("ddim", base)
    ddim.set_timesteps(10)
    assert int(ddim.timesteps[0]) == 999  # trailing: sampling starts where zero-SNR training saw pure noise
    assert float(ddim.alphas_cumprod[-1]) < 1e-6  # the rescaled betas, not the paper's
    with pytest.raises(UserError, match="PNDM cannot sample"):
        make_scheduler("pndm", base)
    paper = make_scheduler("ddim")
    assert paper.config.prediction_type == "epsilon" and float(paper.alphas_cumprod[-1]) > 1e-3


class ZeroUNet:
    """A UNet stand-in that predicts zero noise for every row (so the sampler's own arithmetic shows)."""

    def __init__(self, channels=4):
        from types import SimpleNamespace

        self.config = SimpleNamespace(global_context=False, out_channels=channels)

    def denoise(self, sample, *args, **kwargs):
        n, _, f, h, w = sample.shape
        return torch.zeros(n, 4, f, h, w)


def test_replace_known_keeps_the_context_in_the_known_cells():
    from m3ddm.sampling import sample_windows

    batch = _batch()
    scheduler = make_scheduler("ddim")

    def run(replace_known):
        gens = [torch.Generator().manual_seed(i) for i in range(2)]
        return sample_windows(ZeroUNet(), scheduler, batch, steps=5, generators=gens, guidance=Guidance(1, 1),
                              init="noise", replace_known=replace_known)

    known = batch.mask < 0.5
    replaced, plain = run(True), run(False)
    assert torch.allclose(replaced[known.expand_as(replaced)], batch.context[known.expand_as(replaced)])
    assert not torch.allclose(plain[known.expand_as(plain)], batch.context[known.expand_as(plain)], atol=1e-2)


def test_a_relative_model_that_predicts_nothing_paints_its_context():
    """From noise in one DDIM step on zero-terminal-SNR v-prediction, a model whose prediction is 0 estimates the
    clean latent 0 when it is ordinary, and its context when it denoises relative to it (``batch.base``): the two
    results differ by exactly that context carried to the last noise level, in every cell and branch."""
    from dataclasses import replace
    from types import SimpleNamespace

    class Silent:
        config = SimpleNamespace(global_context=False)

        def denoise(self, sample, *args, **kwargs):
            return torch.zeros_like(sample[:, :4])

    scheduler = make_scheduler("ddim", NoiseSchedule("v_prediction", True, "trailing").config())
    batch = _batch()
    out = {}
    for name, b in (("plain", batch), ("relative", replace(batch, base=batch.context))):
        generators = [torch.Generator().manual_seed(i) for i in range(2)]
        out[name] = sample_windows(Silent(), scheduler, b, steps=1, generators=generators, init="noise",
                                   guidance=Guidance(2.0, 1.0))
    last = scheduler.alphas_cumprod[0].sqrt()  # one trailing step ends at t = 0 (set_alpha_to_one is off)
    assert torch.allclose(out["relative"] - out["plain"], last * batch.context, atol=1e-5)
