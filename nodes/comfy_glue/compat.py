"""The one place where ComfyUI's signatures differ between the supported hosts (v0.3.64 .. v0.33).

Each function calls ComfyUI's own code, passing the newer arguments only where the running host accepts them,
so the rest of the pack is written against one interface.
"""
from __future__ import annotations

import functools
import inspect
from typing import Optional, Sequence

import torch

import comfy.sample
import comfy.samplers


@functools.lru_cache(maxsize=None)
def _accepts(function, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())


def process_conds(model, noise: torch.Tensor, conds: dict, device, seed=None,
                  latent_shapes: Optional[Sequence] = None) -> dict:
    """comfy.samplers.process_conds; v0.8+ also takes the latent shapes (nested latents), which for one video
    latent are just [noise.shape]."""
    kwargs = {"seed": seed}
    if _accepts(comfy.samplers.process_conds, "latent_shapes"):
        kwargs["latent_shapes"] = list(latent_shapes) if latent_shapes is not None else [noise.shape]
    return comfy.samplers.process_conds(model, noise, conds, device, **kwargs)


def fix_empty_latent_channels(model, samples: torch.Tensor) -> torch.Tensor:
    """comfy.sample.fix_empty_latent_channels (v0.33 adds optional downscale ratios; the defaults are the model's)."""
    return comfy.sample.fix_empty_latent_channels(model, samples)
