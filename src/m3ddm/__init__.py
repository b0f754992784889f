"""m3ddm: video outpainting with the Hierarchical Masked 3D Diffusion Model."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Lazy top-level names (also how diffusers finds our classes from a model_index.json: library "m3ddm").
_EXPORTS = {
    "M3DDMUNet": "m3ddm.models.unet",
    "M3DDMPipeline": "m3ddm.pipeline",
    "OutpaintOptions": "m3ddm.pipeline",
    "LatentCodec": "m3ddm.codecs",
    "coarse_to_fine_plan": "m3ddm.planning",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'm3ddm' has no attribute {name!r}")


__all__ = ["__version__", *_EXPORTS]
