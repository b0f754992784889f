"""The 9-channel local condition shared by training and sampling (spec section 8 conventions)."""

import torch

from m3ddm.conditioning import apply_guides, local_condition, model_input, null_condition


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
