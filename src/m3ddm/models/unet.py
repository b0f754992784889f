"""The masked 3D diffusion UNet of M3DDM (pseudo-3D, 9 input channels, fps embedding, global-frame context).

State-dict compatible with the officially released checkpoint (diffusers ``UNet3DConditionModel`` layout, 1,516
entries at full size); written from the prose specification in ``shared/reference/official-m3ddm-spec.md``.

Two ways to call it:

* ``denoise(sample, timestep, fps, context)`` — our API: ``context`` is a ``GlobalContext`` (or a tokens tensor)
  computed ONCE per video by ``encode_global`` and shared by every window, step and guidance branch.
* ``forward(sample, timestep, b, g, f, is_empty_img, do_classfier, encoder_hidden_states, fps)`` — the official
  call (misspelling kept), which builds the guidance contexts from raw global latents; used for parity.
"""

from __future__ import annotations

import os

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from einops import rearrange
from torch import nn

from m3ddm.models.attention import ATTENTION_BACKENDS, Attention, GlobalContext
from m3ddm.models.blocks import BLOCK_TYPES, DownBlock3D, MidBlock3D, UpBlock3D
from m3ddm.models.embeddings import EmbeddingMLP, SinusoidalProjection
from m3ddm.models.global_encoder import CONTEXT_DIM, LightImageEncoder
from m3ddm.models.pseudo3d import BatchInvariantGroupNorm, Pseudo3DConv, framewise_conv

_DOWN = ("CrossAttnDownBlock3D",) * 3 + ("DownBlockP3D",)
_UP = ("UpBlockP3D",) + ("CrossAttnUpBlock3D",) * 3

UNET_PRESETS: dict[str, dict] = {
    # The released model (1.3 B parameters).
    "official": dict(block_out_channels=(320, 640, 1280, 1280), norm_num_groups=32, attention_head_dim=8),
    # The parity fixture's size: for tests.
    "tiny": dict(block_out_channels=(8, 16, 16, 16), norm_num_groups=4, attention_head_dim=2),
    # CPU-trainable sizes for the shipped default and experiments (about 3 M and 10 M parameters).
    "mini": dict(block_out_channels=(16, 32, 64, 64), norm_num_groups=8, attention_head_dim=2),
    "small": dict(block_out_channels=(32, 64, 96, 96), norm_num_groups=8, attention_head_dim=4),
    "base": dict(block_out_channels=(64, 128, 256, 256), norm_num_groups=16, attention_head_dim=8),
}


class UNetOutput(BaseOutput):
    sample: torch.Tensor


def _as_batch(value, n: int, device: torch.device) -> torch.Tensor:
    """Official timestep/fps handling: Python numbers become int64 (truncated); tensors are used as given."""
    if not torch.is_tensor(value):
        value = torch.tensor([value], dtype=torch.long, device=device)
    elif value.ndim == 0:
        value = value[None].to(device)
    else:
        value = value.to(device)
    return value.expand(n) if value.shape[0] != n else value


class M3DDMUNet(ModelMixin, ConfigMixin):
    """Masked 3D UNet. Config keys are the official ``UNet3DConditionModel`` ones plus ``global_context``."""

    config_name = "config.json"
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 9,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = _DOWN,
        up_block_types: tuple[str, ...] = _UP,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int | None = CONTEXT_DIM,
        attention_head_dim: int | tuple[int, ...] = 8,
        global_context: bool = True,
    ):
        super().__init__()
        for name in (*down_block_types, *up_block_types):
            if name not in BLOCK_TYPES:
                raise ValueError(f"unsupported block type {name!r}; expected one of {BLOCK_TYPES}")
        if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length")
        if act_fn != "silu":
            raise ValueError("only act_fn='silu' exists in the M3DDM UNet")
        if global_context and cross_attention_dim != CONTEXT_DIM:
            raise ValueError(f"cross_attention_dim must be {CONTEXT_DIM}: the global-frame encoder emits that width")
        n_blocks = len(block_out_channels)
        heads = (
            tuple(attention_head_dim) if isinstance(attention_head_dim, (list, tuple))
            else (attention_head_dim,) * n_blocks
        )
        context_dim = cross_attention_dim if global_context else None
        c0 = block_out_channels[0]
        emb = 4 * c0
        groups, eps = norm_num_groups, norm_eps

        self.conv_in = nn.Conv3d(in_channels, c0, (1, 3, 3), padding=(0, 1, 1))
        self.time_proj = SinusoidalProjection(c0, max_period=1000, flip_sin_to_cos=flip_sin_to_cos, shift=freq_shift)
        self.time_embedding = EmbeddingMLP(c0, emb)
        self.fps_proj = SinusoidalProjection(c0, max_period=30, flip_sin_to_cos=flip_sin_to_cos, shift=freq_shift)
        self.fps_embedding = EmbeddingMLP(c0, emb)
        self.global_img_encoder = LightImageEncoder(out_channels) if global_context else None

        self.down_blocks = nn.ModuleList()
        cout = c0
        for i, kind in enumerate(down_block_types):
            cin, cout = cout, block_out_channels[i]
            self.down_blocks.append(DownBlock3D(
                cin, cout, emb, layers_per_block, groups, eps, heads[i], context_dim,
                with_attention=kind.startswith("CrossAttn"), add_downsample=i < n_blocks - 1,
                downsample_padding=downsample_padding,
            ))
        self.mid_block = MidBlock3D(block_out_channels[-1], emb, groups, eps, heads[-1], context_dim,
                                    output_scale_factor=mid_block_scale_factor)
        self.up_blocks = nn.ModuleList()
        rev = tuple(reversed(block_out_channels))
        rev_heads = tuple(reversed(heads))
        prev = rev[0]
        for i, kind in enumerate(up_block_types):
            out = rev[i]
            self.up_blocks.append(UpBlock3D(
                prev, out, rev[min(i + 1, n_blocks - 1)], emb, layers_per_block, groups, eps, rev_heads[i],
                context_dim, with_attention=kind.startswith("CrossAttn"), add_upsample=i < n_blocks - 1,
            ))
            prev = out
        self.conv_norm_out = BatchInvariantGroupNorm(groups, c0, eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = Pseudo3DConv(c0, out_channels)

    # ------------------------------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides) -> M3DDMUNet:
        if name not in UNET_PRESETS:
            raise ValueError(f"unknown UNet preset {name!r}; choose from {sorted(UNET_PRESETS)}")
        return cls(**{**UNET_PRESETS[name], **overrides})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, subfolder: str | None = None,
                        torch_dtype: torch.dtype | None = None, **_ignored) -> M3DDMUNet:
        """Load a local folder: the official layout (``UNet3DConditionModel`` config, .safetensors or .bin) or
        one written by ``save_pretrained``. Strict: any missing, unexpected or mis-shaped key is an error."""
        from m3ddm.models.loading import load_unet_folder

        folder = os.path.join(path, subfolder) if subfolder else path
        return load_unet_folder(cls, folder, torch_dtype=torch_dtype)

    @classmethod
    def from_sd_unet2d(cls, unet2d, **overrides) -> M3DDMUNet:
        """Inflate a Stable Diffusion 1.x 2D UNet (a diffusers ``UNet2DConditionModel`` or its folder)."""
        from m3ddm.models.inflate import inflate_from_unet2d

        return inflate_from_unet2d(cls, unet2d, **overrides)

    # ---------------------------------------------------------------------------------------- settings
    def set_attention_backend(self, backend: str) -> None:
        if backend not in ATTENTION_BACKENDS:
            raise ValueError(f"attention backend must be one of {ATTENTION_BACKENDS}")
        for module in self.modules():
            if isinstance(module, Attention):
                module.backend = backend

    def set_channels_last(self, enabled: bool = True) -> None:
        """Store every 2D convolution's weight in NHWC order (or back in NCHW). The per-frame convolutions then
        run channels-last; ``Module.to(memory_format=...)`` cannot do this, since the model holds 5D tensors."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        for module in self.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=fmt)

    # ------------------------------------------------------------------------------------- global frames
    def encode_global(self, global_latents: torch.Tensor, num_global: int) -> torch.Tensor:
        """Global-frame latents ``[B*g, 4, hg, wg]`` (video-major) -> tokens ``[B, g*h'*w', 320]``."""
        if self.global_img_encoder is None:
            raise ValueError("this UNet was built without global context (global_context=False)")
        if global_latents.shape[0] % num_global:
            raise ValueError(f"{global_latents.shape[0]} global latents is not a multiple of g={num_global}")
        features = self.global_img_encoder(global_latents.to(self.dtype))
        return rearrange(features, "(b g) c h w -> b (g h w) c", g=num_global)

    def guidance_context(
        self, global_latents: torch.Tensor, num_global: int, do_classfier: int = 1, is_empty_img: bool = False,
    ) -> GlobalContext:
        """The official guidance batching (spec 4.1) without duplicating tokens: the null context (encoder of
        zero latents, shared by all videos) is encoded once and rows point at it."""
        b = global_latents.shape[0] // num_global
        real = self.encode_global(global_latents, num_global)
        if do_classfier == 1:
            return GlobalContext(real)
        if do_classfier not in (2, 4):
            raise ValueError(f"do_classfier must be 1, 2 or 4, got {do_classfier}")
        null = self.encode_global(torch.zeros_like(global_latents[:num_global]), num_global)
        tokens = torch.cat([null, real])
        zero_rows, real_rows = [0] * b, list(range(1, b + 1))
        if do_classfier == 2:
            index = real_rows + zero_rows if is_empty_img else zero_rows + real_rows
        else:
            index = zero_rows + zero_rows + real_rows + real_rows
        return GlobalContext(tokens, torch.tensor(index))

    # ------------------------------------------------------------------------------------------- forward
    def embeddings(self, timestep, fps, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        t = _as_batch(timestep, n, device)
        r = _as_batch(fps, n, device)
        if bool((t == t[0]).all()) and bool((r == r[0]).all()):
            # One value for the whole batch: embed it once and broadcast. Besides saving work, this keeps every
            # row's result independent of the batch size (small matrix products are not bit-stable across sizes),
            # so batched windows equal sequential ones bit for bit.
            t, r = t[:1], r[:1]
        temb = self.time_embedding(self.time_proj(t).to(self.dtype))
        femb = self.fps_embedding(self.fps_proj(r).to(self.dtype))
        return temb, femb

    def denoise(
        self,
        sample: torch.Tensor,
        timestep,
        fps=1,
        context: GlobalContext | torch.Tensor | None = None,
        context_index: torch.Tensor | list[int] | None = None,
    ) -> torch.Tensor:
        """Predict the noise for ``sample`` ``[N, 9, F, h, w]`` -> ``[N, 4, F, h, w]``."""
        n = sample.shape[0]
        if self.config.global_context:
            if context is None:
                raise ValueError("this UNet needs global-frame context (see encode_global)")
            if torch.is_tensor(context):
                context = GlobalContext(context)
            if context_index is not None:
                context = context.bind(context_index)
        else:
            context = None
        temb, femb = self.embeddings(timestep, fps, n, sample.device)
        x = sample.to(self.dtype)
        if self.config.center_input_sample:
            x = 2 * x - 1.0
        x = framewise_conv(self.conv_in, x)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, femb, context)
            skips.extend(block_skips)
        x = self.mid_block(x, temb, femb, context)
        for block in self.up_blocks:
            x = block(x, skips, temb, femb, context)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))

    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        b: int,
        g: int,
        f: int,
        is_empty_img: bool = False,
        do_classfier: int = 1,
        encoder_hidden_states: torch.Tensor | None = None,
        fps=1,
        return_dict: bool = True,
    ):
        """The official call signature (spec section 2)."""
        if sample.shape[0] != b * do_classfier:
            raise ValueError(f"batch {sample.shape[0]} != b * do_classfier = {b * do_classfier}")
        if sample.shape[2] != f:
            raise ValueError(f"f={f} but the sample has {sample.shape[2]} frames")
        context = None
        if self.config.global_context:
            if encoder_hidden_states is None:
                raise ValueError("encoder_hidden_states (the global-frame latents) is required")
            context = self.guidance_context(encoder_hidden_states, g, do_classfier, is_empty_img)
        out = self.denoise(sample, timestep, fps, context)
        return UNetOutput(sample=out) if return_dict else (out,)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["M3DDMUNet", "UNET_PRESETS", "UNetOutput", "GlobalContext", "count_parameters"]
