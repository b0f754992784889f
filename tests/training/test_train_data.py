"""Training data: discovery, indexing with bad files, clip sampling, no leakage into global frames."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from m3ddm.codecs import LatentCodec
from m3ddm.conditioning import fill_hidden
from m3ddm.training.data import (
    ClipDataset,
    ClipSettings,
    LatentClipDataset,
    SampleNumberBatches,
    VideoEntry,
    build_latent_cache,
    conditioning_fps,
    discover_videos,
    global_frame_indices,
    index_videos,
    sample_clip_indices,
    sample_crop,
    synthetic_entries,
)
from m3ddm.training.masking import MaskProbabilities
from m3ddm.training.objective import build_model_batch
from m3ddm.training.synthetic import iter_synthetic_videos, synthetic_video, write_synthetic_videos
from m3ddm.utils.pixels import to_signed


def _image(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 16, 3), value, np.uint8))


def test_discovers_files_and_frame_folders(tmp_path):
    for name in ("00000.jpg", "00001.jpg"):
        _image(tmp_path / "DAVIS/JPEGImages/480p/bear" / name)
        _image(tmp_path / "DAVIS/JPEGImages/Full-Resolution/bear" / name)
        _image(tmp_path / "DAVIS/Annotations/480p/bear" / name.replace("jpg", "png"))
        _image(tmp_path / "ytvos/train/JPEGImages/0a1b2c" / name)
        _image(tmp_path / "ytvos/train/Annotations/0a1b2c" / name.replace("jpg", "png"))
    (tmp_path / "clips/sub").mkdir(parents=True)
    for name in ("a.mp4", "sub/b.MKV", "c.webm", "d.avi", "e.mov", "notes.txt", ".hidden.mp4"):
        (tmp_path / "clips" / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_videos(tmp_path)]
    assert found == sorted([
        "DAVIS/JPEGImages/480p/bear", "ytvos/train/JPEGImages/0a1b2c",
        "clips/a.mp4", "clips/sub/b.MKV", "clips/c.webm", "clips/d.avi", "clips/e.mov",
    ])


def test_indexing_skips_unreadable_files_and_reads_good_ones(tmp_path):
    paths = write_synthetic_videos(tmp_path, 2, num_frames=10, height=48, width=64, fps=12.0)
    (tmp_path / "garbage.mp4").write_bytes(b"this is not a video" * 50)
    (tmp_path / "empty.avi").write_bytes(b"")
    entries, failures = index_videos(discover_videos(tmp_path))
    assert sorted(e.path for e in entries) == sorted(str(p) for p in paths)
    assert sorted(f[0].rsplit("/", 1)[-1] for f in failures) == ["empty.avi", "garbage.mp4"]
    assert all(e.num_frames == 10 and (e.height, e.width) == (48, 64) and e.fps == 12.0 for e in entries)
    ds = ClipDataset(entries, ClipSettings(num_frames=4, size=(32, 32), num_global_frames=3),
                     MaskProbabilities(), seed=0)
    item = ds[5]
    assert item["frames"].shape == (4, 32, 32, 3) and item["frames"].dtype == torch.uint8
    assert item["global_frames"].shape == (3, 32, 32, 3)
    assert item["skipped"] == 0


def test_clip_indices_strides_and_short_videos():
    rng = np.random.default_rng(0)
    strides = set()
    for _ in range(300):
        idx, s = sample_clip_indices(rng, 100, 16, (1, 30))
        strides.add(s)
        assert 1 <= s <= 6 and idx == [idx[0] + i * s for i in range(16)] and idx[-1] < 100
    assert strides == set(range(1, 7))  # capped at (100 - 1) // 15
    idx, s = sample_clip_indices(rng, 5, 8, (2, 9))
    assert s == 1 and idx == [0, 1, 2, 3, 4, 4, 4, 4]  # short video: stride 1, last frame repeated
    assert conditioning_fps(30.0, 4) == 7.0 and conditioning_fps(24.0, 30) == 1.0
    assert global_frame_indices(100, 16) == [int(x) for x in np.floor(np.linspace(0, 99, 16))]
    box = sample_crop(rng, (90, 160), (64, 64), (0.5, 1.0), (0.8, 1.25))
    top, left, h, w = box
    assert 0 <= top and top + h <= 90 and 0 <= left and left + w <= 160 and 0.7 < w / h < 1.3


def _dataset_over(frames: np.ndarray, probs: MaskProbabilities, size=(64, 64)) -> ClipDataset:
    entry = VideoEntry("memory", len(frames), 24.0, frames.shape[1], frames.shape[2])
    settings = ClipSettings(num_frames=4, size=size, stride_range=(1, 2), crop_scale=(1.0, 1.0),
                            crop_aspect=(1.0, 1.0), num_global_frames=6)
    return ClipDataset([entry], settings, probs, seed=3, read_frames=lambda e, idx: {i: frames[i] for i in idx})


def test_global_frames_carry_no_pixels_of_the_region_to_fill():
    """Changing the source pixels that fall in the region to generate changes nothing the model is given as
    global context: the same mask is applied to the global frames (black) before encoding."""
    video = synthetic_video(1, num_frames=20, height=64, width=64).frames
    probs = MaskProbabilities(strategies={"four": 0, "one": 0, "two": 1.0, "random": 0, "all": 0},
                              guide_cases={"none": 1.0, "first_last": 0, "random": 0}, p_drop_context=0,
                              p_drop_global=0)
    base = _dataset_over(video, probs)
    item = base[0]
    mask = item["mask"][0].numpy() > 0.5
    assert 0 < mask.mean() < 1
    assert (item["global_frames"].numpy()[:, mask] == 0).all()  # black where the clip is to be generated
    assert (item["global_frames"].numpy()[:, ~mask] != 0).any()

    scrambled = video.copy()
    noise = np.random.default_rng(0).integers(0, 256, scrambled.shape, dtype=np.uint8)
    scrambled[:, mask] = noise[:, mask]  # crop is the identity here, so this is exactly the region to fill
    other = _dataset_over(scrambled, probs)[0]
    assert torch.equal(other["global_frames"], item["global_frames"])
    assert not torch.equal(other["frames"], item["frames"])  # the clip itself did change (the target)

    codec = LatentCodec.tiny(0)
    black = codec.encode(-torch.ones(1, 3, 64, 64))[0]
    a = build_model_batch(default_collate([item]), codec, black, device=torch.device("cpu"))
    b = build_model_batch(default_collate([other]), codec, black, device=torch.device("cpu"))
    assert torch.equal(a.global_latents, b.global_latents)
    assert torch.equal(a.context, b.context)  # the masked context does not see it either
    assert not torch.equal(a.latents, b.latents)

    # hidden_context: smooth without a latent cache: the letterboxed pixels are filled from the known ones before
    # encoding (the pre-filled canvas of the pipeline's latent_prefill); the region to fill still never leaks in
    fa = build_model_batch(default_collate([item]), codec, black, device=torch.device("cpu"), fill=True)
    fb = build_model_batch(default_collate([other]), codec, black, device=torch.device("cpu"), fill=True)
    assert torch.equal(fa.context, fb.context) and not torch.equal(fa.context, a.context)
    pixels = to_signed(item["frames"])  # [F, 3, H, W]
    hidden = item["mask"][None].float()  # [1, 1, H, W]
    letterboxed = torch.where(hidden > 0.5, -torch.ones_like(pixels), pixels)
    expected = codec.encode(fill_hidden(letterboxed, hidden)).float()
    assert torch.allclose(fa.context[0].permute(1, 0, 2, 3), expected, atol=1e-5)
    assert torch.equal(fa.latents, a.latents) and torch.equal(fa.mask, a.mask)


def test_one_mask_for_every_frame_of_a_clip():
    video = synthetic_video(2, num_frames=12, height=64, width=64).frames
    ds = _dataset_over(video, MaskProbabilities(guide_cases={"none": 1.0, "first_last": 0, "random": 0},
                                                p_drop_context=0))
    codec = LatentCodec.tiny(0)
    black = codec.encode(-torch.ones(1, 3, 64, 64))[0]
    for k in range(6):
        mb = build_model_batch(default_collate([ds[k]]), codec, black, device=torch.device("cpu"))
        assert (mb.mask == mb.mask[:, :, :1]).all()


def test_unreadable_video_at_run_time_is_skipped_counted_and_deterministic():
    good = synthetic_video(0, num_frames=12, height=64, width=64).frames
    entries = [VideoEntry("good", 12, 24.0, 64, 64), VideoEntry("bad", 12, 24.0, 64, 64)]

    def read(entry, idx):
        if entry.path == "bad":
            raise OSError("corrupt stream")
        return {i: good[i] for i in idx}

    ds = ClipDataset(entries, ClipSettings(num_frames=4, size=(64, 64), num_global_frames=2),
                     MaskProbabilities(), seed=0, read_frames=read)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [ds[k] for k in range(20)]
        again = ds[7]
    skipped = sum(int(it["skipped"]) for it in items)
    assert skipped > 0
    warned = sum("skipping unreadable video bad" in str(w.message) for w in caught)
    assert warned == skipped + int(again["skipped"])
    assert torch.equal(again["frames"], items[7]["frames"]) and again["skipped"] == items[7]["skipped"]


def test_samples_are_pure_functions_of_the_sample_number():
    entries = synthetic_entries(3, 16, 72, 72, 24.0)
    ds = ClipDataset(entries, ClipSettings(num_frames=4, size=(64, 64), num_global_frames=2),
                     MaskProbabilities(), seed=0)
    a, b, c = ds[11], ds[11], ds[12]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["frames"], c["frames"])


def test_sample_numbers_split_processes_and_resume():
    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    r0 = take(SampleNumberBatches(2, 0, rank=0, world_size=2), 3)
    r1 = take(SampleNumberBatches(2, 0, rank=1, world_size=2), 3)
    assert r0 == [[0, 1], [4, 5], [8, 9]] and r1 == [[2, 3], [6, 7], [10, 11]]
    assert take(SampleNumberBatches(2, 2, rank=0, world_size=2), 1) == [[8, 9]]  # resumed at micro-step 2


def test_latent_cache_round_trip(tmp_path):
    codec = LatentCodec.tiny(0)
    entries = synthetic_entries(2, 8, 64, 80, 24.0)
    failures = build_latent_cache(tmp_path / "cache", entries, codec, (64, 64))
    assert failures == []
    settings = ClipSettings(num_frames=4, size=(64, 64), num_global_frames=3)
    ds = LatentClipDataset(tmp_path / "cache", settings, MaskProbabilities(), seed=0)
    item = ds[0]
    assert item["latents"].shape == (4, 4, 8, 8) and item["latent_mask"].shape == (1, 8, 8)
    assert item["global_latents"].shape == (3, 4, 8, 8)
    black = ds.cache.black_latent()
    masked = item["latent_mask"][0] > 0.5
    assert torch.equal(item["global_latents"][:, :, masked], black[None, :, masked].expand(3, -1, -1))
    mb = build_model_batch(default_collate([item]), codec, black, device=torch.device("cpu"))
    assert mb.latents.shape == (1, 4, 4, 8, 8) and mb.global_latents.shape == (3, 4, 8, 8)

    # hidden_context: smooth: the hidden cells of the context and of the global frames hold the fill of the known
    # cells (as the pipeline's latent_fill builds them), nothing else changes
    item["drop_context"] = torch.tensor(False)
    item["drop_global"] = torch.tensor(False)
    item["guides"] = torch.zeros_like(item["guides"])
    plain = build_model_batch(default_collate([item]), codec, black, device=torch.device("cpu"))
    filled = build_model_batch(default_collate([item]), codec, black, device=torch.device("cpu"), fill=True)
    hidden = item["latent_mask"][None]  # [1, 1, h, w]
    frames = item["latents"].permute(1, 0, 2, 3)  # [F, C, h, w]
    assert torch.equal(filled.context[0].permute(1, 0, 2, 3), fill_hidden(frames, hidden))
    assert torch.equal(filled.global_latents, fill_hidden(item["global_latents"], hidden))
    assert not torch.equal(filled.context, plain.context) and torch.equal(filled.mask, plain.mask)
    assert torch.equal(filled.latents, plain.latents)

    # relative_to_context: the batch carries the conditional context as the base, even where the context is dropped
    # (the sampler shifts every branch by the same conditional context); zero in the known cells
    item["drop_context"] = torch.tensor(True)
    relative = build_model_batch(default_collate([item]), codec, black, device=torch.device("cpu"), fill=True,
                                 relative=True)
    assert filled.base is None and torch.equal(relative.base, filled.context)
    assert not torch.equal(relative.context, filled.context)  # the model's input context is the dropped one
    known = item["latent_mask"][0] < 0.5
    assert torch.equal((relative.latents - relative.base)[..., known], torch.zeros_like(relative.latents[..., known]))


def test_a_larger_latent_cache_gives_random_windows(tmp_path):
    codec = LatentCodec.tiny(0)
    f = codec.downsample_factor
    entries = synthetic_entries(1, 8, 96, 96, 24.0)
    build_latent_cache(tmp_path / "cache", entries, codec, (96, 96))
    settings = ClipSettings(num_frames=8, size=(64, 64), stride_range=(1, 1), num_global_frames=2)
    ds = LatentClipDataset(tmp_path / "cache", settings, MaskProbabilities(), seed=0)
    full = ds.cache.latents(0).float()  # [T, C, 96 / f, 96 / f]
    lh = 64 // f
    starts = set()
    for k in range(12):
        item = ds[k]
        clip = item["latents"].permute(1, 0, 2, 3)  # [F, C, h, w]: all 8 frames, stride 1
        assert clip.shape[-2:] == (lh, lh)
        found = [(y, x) for y in range(full.shape[-2] - lh + 1) for x in range(full.shape[-1] - lh + 1)
                 if torch.equal(clip, full[:, :, y : y + lh, x : x + lh])]
        assert len(found) == 1  # a window of the cached latents, at whole cells
        starts.add(found[0])
    assert len(starts) > 3  # and not always the same one
    black = ds.black_latent()
    assert black.shape[-2:] == (lh, lh)
    mb = build_model_batch(default_collate([ds[0]]), codec, black, device=torch.device("cpu"))
    assert mb.latents.shape[-2:] == (lh, lh) and mb.global_latents.shape[-2:] == (lh, lh)


def test_synthetic_videos_move_and_are_reproducible():
    a = synthetic_video(5, num_frames=10, height=40, width=56)
    b = synthetic_video(5, num_frames=10, height=40, width=56)
    assert np.array_equal(a.frames, b.frames) and a.frames.shape == (10, 40, 56, 3)
    assert np.abs(np.diff(a.frames.astype(int), axis=0)).mean() > 0.5  # the camera moves
    names = [v.name for v in iter_synthetic_videos(3, seed=1, num_frames=2, height=16, width=16)]
    assert len(set(names)) == 3
    with pytest.raises(ValueError):
        synthetic_video(0, num_frames=0)
