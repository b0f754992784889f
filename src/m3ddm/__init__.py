"""m3ddm: video outpainting with the Hierarchical Masked 3D Diffusion Model."""

__version__ = "0.1.0"
