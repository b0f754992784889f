"""ComfyUI nodes for m3ddm: load a pipeline, preview the plan, outpaint a batch of frames.

ComfyUI finds nodes through ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` in a package under
``ComfyUI/custom_nodes``; a one-line package that re-exports these two names is enough (see docs/app.md). Nothing here
imports ComfyUI: its types are plain strings and tensors (IMAGE = float [B, H, W, C] in [0, 1]; MASK = [B, H, W]).
"""

from m3ddm.comfyui.nodes import (
    PIPELINE_TYPE,
    M3DDMLoadPipeline,
    M3DDMOutpaint,
    M3DDMPlanPreview,
)

NODE_CLASS_MAPPINGS = {
    "M3DDMLoadPipeline": M3DDMLoadPipeline,
    "M3DDMOutpaint": M3DDMOutpaint,
    "M3DDMPlanPreview": M3DDMPlanPreview,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "M3DDMLoadPipeline": "M3DDM Load Pipeline",
    "M3DDMOutpaint": "M3DDM Outpaint",
    "M3DDMPlanPreview": "M3DDM Plan Preview",
}

__all__ = [
    "NODE_CLASS_MAPPINGS",
    "NODE_DISPLAY_NAME_MAPPINGS",
    "PIPELINE_TYPE",
    "M3DDMLoadPipeline",
    "M3DDMOutpaint",
    "M3DDMPlanPreview",
]
