"""Evaluation of video outpainting: metrics (MSE, PSNR, SSIM, LPIPS, FVD, temporal consistency), classical
baselines, the crop-and-restore protocol of the paper, and reports.

Modules: ``metrics`` (per-frame image metrics), ``temporal`` (warp error, flicker), ``i3d`` + ``fvd``
(Frechet Video Distance with the Kinetics-400 I3D), ``lpips`` (LPIPS-Alex from local weights),
``baselines`` (replicate, reflect, telea, propagate, and the m3ddm adapter), ``protocol`` (datasets,
masking, scoring, the evaluation loop) and ``report`` (tables and visuals). Heavy pieces load lazily.
"""

from m3ddm.evaluation.baselines import BASELINES, propagate, reflect, replicate, resolve_method, telea
from m3ddm.evaluation.fvd import I3DFeatures, frechet_distance, fvd_from_features
from m3ddm.evaluation.metrics import detail_ratio, mse, psnr_from_mse, region_mask, ssim, ssim_map
from m3ddm.evaluation.protocol import EvalConfig, crop_pads, run_evaluation, score_files, score_video

__all__ = [
    "BASELINES",
    "EvalConfig",
    "I3DFeatures",
    "crop_pads",
    "detail_ratio",
    "frechet_distance",
    "fvd_from_features",
    "mse",
    "propagate",
    "psnr_from_mse",
    "reflect",
    "region_mask",
    "replicate",
    "resolve_method",
    "run_evaluation",
    "score_files",
    "score_video",
    "ssim",
    "ssim_map",
    "telea",
]
