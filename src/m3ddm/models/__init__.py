"""The masked 3D UNet, its global-frame encoder, and weight loading / SD inflation."""

from m3ddm.models.attention import GlobalContext
from m3ddm.models.unet import UNET_PRESETS, M3DDMUNet, UNetOutput, count_parameters

__all__ = ["M3DDMUNet", "UNET_PRESETS", "UNetOutput", "GlobalContext", "count_parameters"]
