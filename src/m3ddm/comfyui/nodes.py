"""The node classes, in ComfyUI's conventions (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``, ``CATEGORY``).

IMAGE is a float tensor [B, H, W, C] in [0, 1] (B = frames of one video); MASK is [B, H, W], 1 where m3ddm generated
pixels. Settings left at 0 (or -1 for guidance) take the model's own defaults, as the CLI does when a flag is absent.
"""

from __future__ import annotations

import numpy as np
import torch

from m3ddm.app.preview import plan_preview
from m3ddm.commands.arguments import parse_ratio
from m3ddm.errors import UserError
from m3ddm.geometry import Geometry, Pad, plan_geometry
from m3ddm.utils.pixels import to_unit, unit_to_uint8

CATEGORY = "m3ddm"
PIPELINE_TYPE = "M3DDM_PIPELINE"  # a loaded M3DDMPipeline passed between nodes
TARGETS = ("ratio", "pads")
RATIO_TOOLTIP = "target aspect ratio W:H, e.g. 9:16, 1:1, 16:9, 2.39:1 (target = ratio)"
MAX_PAD = 16384


def _pad_inputs() -> dict:
    spec = {"default": 0, "min": 0, "max": MAX_PAD, "step": 1, "tooltip": "pixels added on this side (target = pads)"}
    return {f"pad_{side}": ("INT", dict(spec)) for side in ("left", "top", "right", "bottom")}


def _target_inputs() -> dict:
    return {
        "target": (list(TARGETS), {"default": "ratio", "tooltip": "grow to an aspect ratio, or by four pads"}),
        "ratio": ("STRING", {"default": "9:16", "tooltip": RATIO_TOOLTIP}),
        **_pad_inputs(),
    }


def images_to_frames(images: torch.Tensor) -> np.ndarray:
    """ComfyUI IMAGE [B, H, W, C] float in [0, 1] -> uint8 frames [B, H, W, 3] (alpha dropped, grey made RGB)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise UserError(f"expected an IMAGE batch shaped [frames, height, width, channels], got {shape}")
    if images.shape[-1] == 1:
        images = images.expand(*images.shape[:-1], 3)
    return unit_to_uint8(images[..., :3].detach().float().cpu().numpy())


def frames_to_images(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(to_unit(np.asarray(frames))).float()


def _target(target: str, ratio: str, pads: tuple[int, int, int, int]) -> tuple[float | None, tuple[int, ...] | None]:
    """The node's widgets -> a parsed ratio (width / height) or whole-pixel pads."""
    if target == "ratio":
        if not str(ratio).strip():
            raise UserError("choose a target aspect ratio, e.g. 9:16")
        return parse_ratio(ratio), None
    if target == "pads":
        if not any(pads):
            raise UserError("all pads are zero: nothing to outpaint")
        return None, tuple(int(p) for p in pads)
    raise UserError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def output_geometry(height: int, width: int, ratio: float | None, pads: tuple[int, ...] | None,
                    size: int = 256) -> Geometry:
    """The geometry ``outpaint_array`` uses: pads keep every source pixel and add exactly the pads."""
    if pads is not None:
        left, top, right, bottom = pads
        return plan_geometry(height, width, pad=Pad(*pads, unit="pixel"), size=size,
                             output_size=(width + left + right, height + top + bottom))
    return plan_geometry(height, width, ratio=ratio, size=size)


class M3DDMLoadPipeline:
    """The shipped default model, a pipeline folder (``--model``), or the official UNet + SD VAE folders."""

    DESCRIPTION = "Load an m3ddm pipeline: the shipped default model, a pipeline folder, or official UNet + VAE."
    RETURN_TYPES = (PIPELINE_TYPE,)
    RETURN_NAMES = ("pipeline",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 (ComfyUI's name)
        return {
            "required": {
                "source": (["default", "folder", "official"], {
                    "default": "default",
                    "tooltip": "default: the small shipped preview model; folder: a pipeline folder; "
                               "official: the released UNet folder + an SD-1.5 vae folder"}),
                "model_dir": ("STRING", {"default": "", "tooltip": "pipeline folder (source = folder)"}),
                "unet_dir": ("STRING", {"default": "", "tooltip": "official UNet folder (source = official)"}),
                "vae_dir": ("STRING", {"default": "", "tooltip": "SD VAE folder (source = official)"}),
                "device": (["auto", "cpu", "cuda"], {"default": "auto"}),
                "dtype": (["float32", "float16", "bfloat16"], {"default": "float32"}),
            }
        }

    def load(self, source: str, model_dir: str = "", unet_dir: str = "", vae_dir: str = "", device: str = "auto",
             dtype: str = "float32") -> tuple:
        from m3ddm.pipeline import M3DDMPipeline

        if source == "default":
            model, unet, vae = None, None, None
        elif source == "folder":
            if not model_dir.strip():
                raise UserError("source = folder needs model_dir (a pipeline folder)")
            model, unet, vae = model_dir.strip(), None, None
        elif source == "official":
            if not unet_dir.strip() or not vae_dir.strip():
                raise UserError("source = official needs both unet_dir and vae_dir")
            model, unet, vae = None, unet_dir.strip(), vae_dir.strip()
        else:
            raise UserError(f"unknown source {source!r}; choose default, folder or official")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("device cuda was asked for but no CUDA GPU is available")
        pipe = M3DDMPipeline.load(model, unet, vae, torch_dtype=getattr(torch, dtype))
        pipe.unet.to(device)
        pipe.vae.to(device)
        return (pipe,)


class M3DDMOutpaint:
    """Outpaint a batch of frames (one video) to a ratio or by four pads; returns the frames and the generated mask."""

    DESCRIPTION = ("Outpaint the frames of one video with M3DDM (coarse-to-fine over the whole batch). "
                   "Returns the outpainted frames and a mask of the generated region (1 = generated).")
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "mask")
    FUNCTION = "outpaint"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 (ComfyUI's name)
        return {
            "required": {
                "pipeline": (PIPELINE_TYPE,),
                "images": ("IMAGE", {"tooltip": "the video's frames, in order"}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.01,
                                  "tooltip": "the video's frame rate (the model is conditioned on it)"}),
                **_target_inputs(),
                "size": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 8,
                                 "tooltip": "working long side in pixels; 0 = the model's"}),
                "steps": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "0 = the model's"}),
                "strength": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "1 = from noise; lower refines the pre-fill; "
                                                  "0 = the model's"}),
                "guidance_context": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 50.0, "step": 0.1,
                                               "tooltip": "s1 of eq. 4; -1 = the model's"}),
                "guidance_global": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 50.0, "step": 0.1,
                                              "tooltip": "s2 of eq. 4; -1 = the model's"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "adapt_steps": ("INT", {"default": 0, "min": 0, "max": 5000,
                                        "tooltip": "tune a copy of the model on this video first (LoRA steps); "
                                                   "0 = off"}),
                "steady": ("INT", {"default": -1, "min": -1, "max": 64,
                                   "tooltip": "frames on either side whose borders are averaged along the camera's "
                                              "motion; 0 = off, -1 = the model's"}),
                "keep_seen": (["model", "on", "off"], {"default": "model",
                                                       "tooltip": "paste the border pixels other frames saw, sharp "
                                                                  "(for pans of a still scene); model = its default"}),
                "texture": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 1.0, "step": 0.05,
                                      "tooltip": "lend the picture's grain to the border next to it; 0 = off, "
                                                 "-1 = the model's"}),
            }
        }

    def outpaint(self, pipeline, images: torch.Tensor, fps: float, target: str, ratio: str, pad_left: int,
                 pad_top: int, pad_right: int, pad_bottom: int, size: int = 0, steps: int = 0, strength: float = 0.0,
                 guidance_context: float = -1.0, guidance_global: float = -1.0, seed: int = 0,
                 adapt_steps: int = 0, steady: int = -1, keep_seen: str = "model", texture: float = -1.0) -> tuple:
        frames = images_to_frames(images)
        ratio_value, pads = _target(target, ratio, (pad_left, pad_top, pad_right, pad_bottom))
        options = {
            "size": int(size) or None, "steps": int(steps) or None, "strength": float(strength) or None,
            "guidance_context": None if guidance_context < 0 else float(guidance_context),
            "guidance_global": None if guidance_global < 0 else float(guidance_global),
            "adapt": int(adapt_steps), "steady": None if steady < 0 else int(steady),
            "keep_seen": {"model": None, "on": True, "off": False}[keep_seen],
            "texture": None if texture < 0 else float(texture),
        }
        if pads is not None:
            out = pipeline.outpaint_array(frames, fps=fps, pad_px=pads, seed=int(seed), **options)
        else:
            out = pipeline.outpaint_array(frames, fps=fps, seed=int(seed), ratio=ratio_value, **options)
        h, w = frames.shape[1:3]
        geometry = output_geometry(h, w, ratio_value, pads, options["size"] or pipeline.config.default_size)
        mask = geometry.output_mask
        if mask.shape != out.shape[1:3]:  # the mask must describe these very pixels
            raise RuntimeError(f"the generated mask {mask.shape} does not match the output {out.shape[1:3]}")
        masks = torch.from_numpy(mask.astype(np.float32))[None].expand(out.shape[0], -1, -1).contiguous()
        return frames_to_images(out), masks


class M3DDMPlanPreview:
    """The first frame on the output canvas, the region to generate shaded and outlined (no model needed)."""

    DESCRIPTION = "Show where M3DDM will generate: the first frame on the new canvas, the new region outlined."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("preview",)
    FUNCTION = "preview"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 (ComfyUI's name)
        return {
            "required": {
                "images": ("IMAGE",),
                **_target_inputs(),
                "max_side": ("INT", {"default": 1024, "min": 64, "max": 8192, "step": 8,
                                     "tooltip": "longest side of the preview image"}),
            }
        }

    def preview(self, images: torch.Tensor, target: str, ratio: str, pad_left: int, pad_top: int, pad_right: int,
                pad_bottom: int, max_side: int = 1024) -> tuple:
        frame = images_to_frames(images[:1])[0]
        ratio_value, pads = _target(target, ratio, (pad_left, pad_top, pad_right, pad_bottom))
        geometry = output_geometry(frame.shape[0], frame.shape[1], ratio_value, pads)
        return (frames_to_images(plan_preview(frame, geometry, max_side=int(max_side))[None]),)
