"""What the pack needs to know about each native video DiT, in one table.

Adding a model means adding one `Architecture` entry. Nothing here imports ComfyUI: entries match the diffusion
model's class (or a base class) by name and read attributes of the module tree.

Per entry:
- blocks:            attribute path of the transformer block list whose first K blocks are the "sketching" blocks.
- attention_path:    path, inside one block, of the module whose output is the block's self-attention result for
                     the video tokens (the official FADE feature); None means the block has no single such module.
- output_index:      which element to take when a module returns a tuple (Mochi and Hunyuan return (img, txt)).
- layout:            how the captured tensor is laid out (sketch.TOKENS or a grid layout).
- patch_size:        callable(diffusion_model) -> (pt, ph, pw): latent voxels per token.
- attention_layout:  layout of the attention output where it differs from the block output.
- prepended_conds:   model conds (as CFGGuider processes them) whose tokens the model puts in FRONT of the video
                     tokens (reference images); tokens appended after the video tokens are cut off by position.
- flow_matching:     the family samples in flow space (user-facing text only; the runtime reads the MODEL).
- saves_inplace:     the blocks update tensors in place that autograd saved (HunyuanVideo's `txt +=`, LTXV's
                     `x +=`), so the gradient pass must clone saved tensors (saved_tensors_hooks).
Token grids are the latent (T, H, W) divided by the patch size, rounded up (the models pad to the patch size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch

from .algo.sketch import GRID_BTHWD, GRID_THWBD, TOKENS

FEATURE_ATTENTION = "attention"
FEATURE_BLOCK = "block"


def _triple(value) -> Tuple[int, int, int]:
    if isinstance(value, int):
        return (1, value, value)
    value = tuple(int(v) for v in value)
    return value if len(value) == 3 else (1,) + value[-2:]


def _cosmos_patch(dm) -> Tuple[int, int, int]:
    spatial = dm.patch_spatial
    spatial = spatial[0] if isinstance(spatial, (tuple, list)) else spatial
    return (int(dm.patch_temporal), int(spatial), int(spatial))


@dataclass(frozen=True)
class Architecture:
    name: str                      # shown in messages and the README table
    class_names: Tuple[str, ...]   # diffusion model classes (matched against the class and its bases)
    blocks: str
    attention_path: Optional[str]
    layout: str
    patch_size: Callable[[object], Tuple[int, int, int]]
    output_index: Optional[int] = None
    saves_inplace: bool = False
    attention_layout: Optional[str] = None   # layout of the attention output when it differs from the block's
    prepended_conds: Tuple[str, ...] = ()
    flow_matching: bool = True               # samples x = (1 - s) x0 + s eps (False: an EDM / VE model)

    def block_list(self, diffusion_model) -> Sequence[torch.nn.Module]:
        blocks = _resolve(diffusion_model, self.blocks)
        return list(blocks.values()) if isinstance(blocks, torch.nn.ModuleDict) else list(blocks)

    def feature_module(self, block: torch.nn.Module, feature: str) -> torch.nn.Module:
        if feature == FEATURE_BLOCK:
            return block
        if feature != FEATURE_ATTENTION:
            raise ValueError(f"feature must be '{FEATURE_ATTENTION}' or '{FEATURE_BLOCK}', got {feature!r}")
        if self.attention_path is None:
            raise ValueError(f"{self.name} blocks have no separate self-attention output; use feature 'block'")
        if self.attention_path == "cosmos1:first_full_attention":
            for sub in block.blocks:
                if getattr(sub, "block_type", "") in ("fa", "full_attn"):
                    return sub.block
            raise ValueError(f"{self.name} block has no full-attention sub-block")
        return _resolve(block, self.attention_path)

    def token_grid(self, diffusion_model, latent_shape: Sequence[int]) -> Tuple[int, int, int]:
        pt, ph, pw = self.patch_size(diffusion_model)
        t, h, w = latent_shape[-3:]
        return (math.ceil(t / pt), math.ceil(h / ph), math.ceil(w / pw))

    def feature_layout(self, feature: str) -> str:
        if feature == FEATURE_ATTENTION and self.attention_layout is not None:
            return self.attention_layout
        return self.layout

    def token_offset(self, feature: torch.Tensor, layout: str, grid, model_conds) -> int:
        """How many extra tokens precede the video tokens in a captured TOKENS feature."""
        if layout != TOKENS or not any(key in model_conds for key in self.prepended_conds):
            return 0
        return max(0, feature.shape[1] - grid[0] * grid[1] * grid[2])

    def take(self, output):
        if isinstance(output, (tuple, list)):
            return output[self.output_index or 0]
        return output


def _resolve(obj, path: str):
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


ARCHITECTURES: Tuple[Architecture, ...] = (
    # Wan: reference-image tokens go first (ref_conv), time_dim_concat frames last.
    Architecture("Wan 2.1 / 2.2", ("WanModel",), blocks="blocks", attention_path="self_attn", layout=TOKENS,
                 patch_size=lambda dm: _triple(dm.patch_size), prepended_conds=("reference_latent",)),
    Architecture("HunyuanVideo", ("HunyuanVideo",), blocks="double_blocks", attention_path="img_attn.proj",
                 layout=TOKENS, patch_size=lambda dm: _triple(dm.patch_size), output_index=0, saves_inplace=True,
                 prepended_conds=("ref_latent",)),
    Architecture("LTX-Video", ("LTXVModel",), blocks="transformer_blocks", attention_path="attn1", layout=TOKENS,
                 patch_size=lambda dm: _triple(dm.patchifier.patch_size), saves_inplace=True),
    Architecture("Mochi", ("AsymmDiTJoint",), blocks="blocks", attention_path="attn", layout=TOKENS,
                 patch_size=lambda dm: _triple(dm.patch_size), output_index=0),
    Architecture("Cosmos 1.0", ("GeneralDIT",), blocks="blocks", attention_path="cosmos1:first_full_attention",
                 layout=GRID_THWBD, patch_size=_cosmos_patch, flow_matching=False),
    # Predict2's blocks carry [B,T,H,W,D] grids but its self-attention runs on token sequences.
    Architecture("Cosmos Predict2", ("MiniTrainDIT",), blocks="blocks", attention_path="self_attn",
                 layout=GRID_BTHWD, patch_size=_cosmos_patch, attention_layout=TOKENS),
)


def supported_names() -> str:
    """Every architecture FADE's guide knows, for user-facing text (generated, so it never goes stale)."""
    return ", ".join(a.name for a in ARCHITECTURES)


def flow_matching_names() -> str:
    return ", ".join(a.name for a in ARCHITECTURES if a.flow_matching)


def supported_families() -> str:
    """The model families, without versions ("Wan, HunyuanVideo, ..."), for short user-facing text."""
    families = []
    for arch in ARCHITECTURES:
        family = arch.name.split(" ")[0]
        if family not in families:
            families.append(family)
    return ", ".join(families)


def find_architecture(diffusion_model) -> Architecture:
    """The table entry for a diffusion model (by its class or a base class), or a ValueError naming the
    supported ones."""
    names = [cls.__name__ for cls in type(diffusion_model).__mro__]
    for arch in ARCHITECTURES:
        if any(n in names for n in arch.class_names):
            return arch
    raise ValueError(f"FADE does not know the {type(diffusion_model).__name__} architecture. Supported video models: "
                     f"{supported_names()}. Connect one of those (loaded with the core model loaders).")
