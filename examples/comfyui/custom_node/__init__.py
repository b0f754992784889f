"""Copy this folder to ComfyUI/custom_nodes/m3ddm (with m3ddm installed in ComfyUI's Python) to get the M3DDM nodes."""

from m3ddm.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
