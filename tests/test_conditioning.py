"""The 9-channel local condition shared by training and sampling (spec section 8 conventions)."""

import torch

from m3ddm.conditioning import (
    apply_guides,
    fill_hidden,
    from_relative,
    local_condition,
    model_input,
    null_condition,
    to_relative,
)
from m3ddm.schedule import NoiseSchedule
from m3ddm.training.objective import training_noise_scheduler


def _clip(b=2, c=4, f=3, h=5, w=6, seed=0):
    return torch.randn(b, c, f, h, w, generator=torch.Generator().manual_seed(seed))


def test_local_condition_broadcasts_the_latent_mask_to_every_row_and_frame():
    latents = _clip()
    cells = (torch.arange(6) < 2).float().expand(5, 6)  # the two left columns to generate
    context, mask = local_condition(latents, cells[None, None, None])
    assert torch.equal(context, latents)
    assert mask.shape == (2, 1, 3, 5, 6)
    assert torch.equal(mask[1, 0, 2], cells) and mask.sum() == 2 * 3 * 5 * 2


def test_guide_frames_give_their_full_latent_with_a_zero_mask_and_other_frames_are_untouched():
    latents, guides = _clip(seed=0), _clip(seed=1)
    flags = torch.tensor([[True, False, False], [False, False, True]])
    context, mask = local_condition(latents, torch.ones(1, 1, 1, 5, 6), guides, flags)
    for row, frame in ((0, 0), (1, 2)):
        assert torch.equal(context[row, :, frame], guides[row, :, frame])
        assert mask[row, :, frame].abs().sum() == 0
    for row, frame in ((0, 1), (0, 2), (1, 0), (1, 1)):
        assert torch.equal(context[row, :, frame], latents[row, :, frame])
        assert torch.all(mask[row, :, frame] == 1)


def test_no_flagged_frame_changes_nothing():
    latents, mask = _clip(), torch.ones(2, 1, 3, 5, 6)
    for flags in (None, torch.zeros(2, 3, dtype=torch.bool)):
        context, out_mask = apply_guides(latents, mask, _clip(seed=3), flags)
        assert context is latents and out_mask is mask


def test_null_condition_is_the_black_latent_with_an_all_ones_mask_and_keeps_the_guides():
    black = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(4))
    guides = _clip(seed=5)
    flags = torch.tensor([[False, True, False], [False, False, False]])
    context, mask = null_condition(black, (2, 4, 3, 5, 6), guides, flags)
    assert torch.equal(context[0, :, 1], guides[0, :, 1]) and mask[0, :, 1].abs().sum() == 0
    assert torch.equal(context[1, :, 0], black) and torch.equal(context[0, :, 2], black)
    assert mask.sum() == 2 * 3 * 5 * 6 - 5 * 6  # all ones but the guide frame


def test_model_input_orders_noisy_latent_context_and_mask_in_the_official_channel_order():
    noisy, context, mask = _clip(seed=6), _clip(seed=7), torch.ones(2, 1, 3, 5, 6)
    x = model_input(noisy, context.double(), mask.bool())
    assert x.shape == (2, 9, 3, 5, 6) and x.dtype == noisy.dtype
    assert torch.equal(x[:, :4], noisy) and torch.equal(x[:, 4:8], context) and torch.all(x[:, 8] == 1)


def _band(h=6, w=10, hidden_from=6):
    """A right-hand band of hidden cells (1 = hidden) ``[1, 1, h, w]``."""
    hidden = torch.zeros(1, 1, h, w)
    hidden[..., hidden_from:] = 1
    return hidden


def test_fill_hidden_keeps_known_cells_and_ignores_what_the_hidden_cells_held():
    latents = torch.randn(3, 4, 6, 10, generator=torch.Generator().manual_seed(0))
    hidden = _band()
    filled = fill_hidden(latents, hidden)
    known = hidden[0, 0] < 0.5
    assert torch.equal(filled[..., known], latents[..., known])
    other = latents.clone()
    other[..., ~known] = -7.0  # black latents or anything else: the fill reads the known cells only
    assert torch.equal(fill_hidden(other, hidden), filled)
    assert not torch.equal(filled[..., ~known], latents[..., ~known])


def test_fill_hidden_continues_the_edge_and_stays_within_the_known_values():
    # a constant picture fills with that constant; a vertical ramp at the edge is continued row by row
    assert torch.allclose(fill_hidden(torch.full((1, 2, 6, 10), 3.0), _band()), torch.full((1, 2, 6, 10), 3.0))
    ramp = torch.arange(6.0)[:, None].expand(6, 10).clone()[None, None]  # each row its own value
    filled = fill_hidden(ramp, _band(hidden_from=4))[0, 0]
    assert bool((filled[1:, 4] > filled[:-1, 4]).all())  # next to the edge the rows keep their order
    spread = filled.amax(0) - filled.amin(0)  # per column: the edge's contrast, blurred further out
    assert bool((spread[5:] < spread[4:-1]).all()) and spread[-1] > 0
    random = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    hidden = torch.zeros(1, 1, 8, 8)
    hidden[..., :3, :] = 1  # a top band
    out = fill_hidden(random, hidden)
    lo = random[..., 3:, :].amin(dim=(-2, -1), keepdim=True)
    hi = random[..., 3:, :].amax(dim=(-2, -1), keepdim=True)
    assert bool(((out >= lo - 1e-5) & (out <= hi + 1e-5)).all())  # a mean of known values, never beyond them


def test_fill_hidden_leaves_a_frame_with_no_known_cell_as_it_is():
    latents = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(2))
    hidden = torch.stack([torch.ones(1, 5, 5), _band(5, 5, 3)[0]])  # frame 0 all hidden, frame 1 a band
    out = fill_hidden(latents, hidden)
    assert torch.equal(out[0], latents[0]) and not torch.equal(out[1], latents[1])


def test_to_and_from_relative_move_between_the_diffusions_of_x0_and_of_x0_minus_the_base():
    """The sampler steps ordinary latents; a relative model sees and predicts those of ``x0 - base``: the shifted
    noisy latent is the noisy ``x0 - base`` with the same noise, and its prediction shifted back is the ordinary
    one (v, epsilon and sample predictions), at every noise level including zero SNR."""
    g = torch.Generator().manual_seed(0)
    x0, base, eps = (torch.randn(3, 4, 2, 5, 5, generator=g) for _ in range(3))
    t = torch.tensor([0, 500, 999])
    scheduler = training_noise_scheduler(NoiseSchedule(prediction_type="v_prediction", rescale_betas_zero_snr=True))
    alpha_bar = scheduler.alphas_cumprod[t]
    for kind in ("v_prediction", "epsilon", "sample"):
        assert torch.allclose(to_relative(scheduler.add_noise(x0, eps, t), base, alpha_bar),
                              scheduler.add_noise(x0 - base, eps, t), atol=1e-5)
        prediction = {"v_prediction": scheduler.get_velocity, "epsilon": lambda x, e, _: e,
                      "sample": lambda x, e, _: x}[kind]
        assert torch.allclose(from_relative(prediction(x0 - base, eps, t), base, alpha_bar, kind),
                              prediction(x0, eps, t), atol=1e-5)
    assert torch.equal(to_relative(x0, base, 1.0), x0 - base)  # one number for every sample
