"""Classical baselines: output geometry, known pixels kept, and propagation beating inpainting on a pan."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from m3ddm.errors import UserError
from m3ddm.evaluation.baselines import BASELINES, M3DDMMethod, resolve_method
from m3ddm.evaluation.metrics import mse, psnr_from_mse, region_mask
from m3ddm.evaluation.protocol import crop_known, crop_pads


def _region_psnr(pred: np.ndarray, gt: np.ndarray, pads) -> float:
    mask = region_mask(gt.shape[1], gt.shape[2], pads)
    return float(np.mean([psnr_from_mse(mse(p, g, mask)) for p, g in zip(pred, gt, strict=True)]))


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("pads", [(7, 0, 5, 0), (0, 4, 0, 6), (3, 2, 0, 9)])
def test_baselines_restore_the_frame_size_and_keep_known_pixels(name: str, pads, pan_video) -> None:
    gt = pan_video[:6, :40, :48]
    known = crop_known(gt, pads)
    out = BASELINES[name](known, pads, 24.0)
    assert out.dtype == np.uint8 and out.shape == gt.shape
    left, top, right, bottom = pads
    assert np.array_equal(out[:, top : gt.shape[1] - bottom, left : gt.shape[2] - right], known)


def test_replicate_and_reflect_fill_as_named() -> None:
    frames = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)
    rep = BASELINES["replicate"](frames, (2, 0, 0, 0), 24.0)
    assert np.array_equal(rep[:, :, 0], frames[:, :, 0]) and np.array_equal(rep[:, :, 1], frames[:, :, 0])
    ref = BASELINES["reflect"](frames, (2, 0, 0, 0), 24.0)
    assert np.array_equal(ref[:, :, 0], frames[:, :, 2]) and np.array_equal(ref[:, :, 1], frames[:, :, 1])


def test_propagation_does_not_cross_a_scene_cut(pan_video) -> None:
    other_shot = np.ascontiguousarray(pan_video[:, ::-1, ::-1])  # a different picture, same size
    video = np.concatenate([pan_video[:8], other_shot[:8]])
    pads = (12, 0, 12, 0)
    out = BASELINES["propagate"](crop_known(video, pads), pads, 24.0)
    alone = BASELINES["propagate"](crop_known(video[:8], pads), pads, 24.0)
    assert np.array_equal(out[:8], alone)  # the second shot contributed nothing to the first


def test_propagation_beats_telea_on_a_horizontal_pan(pan_video) -> None:
    pads = crop_pads(pan_video.shape[1], pan_video.shape[2], 0.25, "horizontal")
    known = crop_known(pan_video, pads)
    telea = _region_psnr(BASELINES["telea"](known, pads, 24.0), pan_video, pads)
    propagated = _region_psnr(BASELINES["propagate"](known, pads, 24.0), pan_video, pads)
    assert propagated > telea + 4.0, (propagated, telea)


def test_method_registry(tmp_path) -> None:
    for name in ("replicate", "reflect", "telea", "propagate"):
        assert resolve_method(name)[1] is BASELINES[name]
    label, method = resolve_method(f"m3ddm:{tmp_path}", seed=3, options={"steps": 5})
    assert label == f"m3ddm:{tmp_path}" and isinstance(method, M3DDMMethod)
    assert (method.model_dir, method.seed, method.options) == (str(tmp_path), 3, {"steps": 5})
    assert resolve_method("m3ddm")[1].model_dir is None
    with pytest.raises(UserError, match="unknown method"):
        resolve_method("bilinear")
    with pytest.raises(UserError, match="model folder not found"):
        resolve_method("m3ddm:/nonexistent/model")


@pytest.mark.skipif(importlib.util.find_spec("m3ddm.pipeline") is None, reason="m3ddm.pipeline not built yet")
def test_m3ddm_adapter_calls_the_pipeline(monkeypatch, pan_video) -> None:
    import m3ddm.pipeline

    calls = {}

    class FakePipeline:
        @classmethod
        def load(cls, model_dir=None):
            calls["model_dir"] = model_dir
            return cls()

        def outpaint_array(self, frames, *, fps, pad_px, seed, **options):
            calls.update(fps=fps, pad_px=pad_px, seed=seed, options=options)
            return BASELINES["replicate"](frames, pad_px, fps)

    monkeypatch.setattr(m3ddm.pipeline, "M3DDMPipeline", FakePipeline)
    pads = (8, 0, 8, 0)
    out = M3DDMMethod("model-dir", seed=5, options={"steps": 2})(crop_known(pan_video[:3], pads), pads, 12.0)
    assert out.shape == pan_video[:3].shape
    assert calls == {"model_dir": "model-dir", "fps": 12.0, "pad_px": pads, "seed": 5, "options": {"steps": 2}}
