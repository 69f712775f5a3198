"""ComfyUI's sampling conventions as the pack needs them: which sigma space a model samples in, and the NOISE
tensor that makes a stock sampler start exactly at a given latent."""
from __future__ import annotations

import math

import torch

import comfy.model_management
import comfy.model_sampling

from ..algo.freeinit import FLOW, VARIANCE_EXPLODING


def parameterisation(model_sampling) -> str:
    """FLOW for rectified-flow models, VARIANCE_EXPLODING for the x = x0 + sigma*eps spaces; else a ValueError."""
    if isinstance(model_sampling, comfy.model_sampling.CONST):
        return FLOW
    if isinstance(model_sampling, (comfy.model_sampling.EPS, comfy.model_sampling.COSMOS_RFLOW)):
        return VARIANCE_EXPLODING
    raise ValueError(f"unknown sampling type {type(model_sampling).__name__}: FreeInit and FADE support "
                     "flow-matching (CONST) models and EPS / v-prediction / EDM / Cosmos models")


def is_discrete_training_schedule(model_sampling) -> bool:
    """EPS / v-prediction models with a discrete training schedule (SD-style), not EDM."""
    return isinstance(model_sampling, comfy.model_sampling.ModelSamplingDiscrete) and not isinstance(
        model_sampling, comfy.model_sampling.ModelSamplingDiscreteEDM)


def max_denoise(model_sampling, first_sigma: float) -> bool:
    """The same test ComfyUI's samplers use to decide whether the start is pure noise."""
    top = float(model_sampling.sigma_max)
    return math.isclose(top, first_sigma, rel_tol=1e-05) or first_sigma > top


def noise_for_start(target: torch.Tensor, model_sampling, first_sigma: float,
                    latent_in_model_space: torch.Tensor) -> torch.Tensor:
    """The NOISE tensor that makes a ComfyUI sampler start exactly at `target`.

    Samplers start at noise_scaling(sigma_0, noise, latent, max_denoise), which is affine in noise; invert it.
    """
    md = max_denoise(model_sampling, first_sigma)
    sigma = torch.tensor([first_sigma], dtype=torch.float64)
    ones = torch.ones((1,) * target.ndim, dtype=torch.float64)
    latent = latent_in_model_space.to(torch.float64)
    scale = model_sampling.noise_scaling(sigma, ones, torch.zeros_like(ones), md)
    offset = model_sampling.noise_scaling(sigma, torch.zeros_like(latent), latent, md)
    return ((target.to(torch.float64) - offset) / scale).to(target.dtype)


def noise_unit(model_sampling, first_sigma: float, like: torch.Tensor) -> torch.Tensor:
    """What one unit of NOISE becomes at the sampler's start (1 for flow models; sqrt(1 + s^2)-type factors for
    the VE spaces), as a one-element tensor on like's device."""
    sigma = torch.tensor([first_sigma], device=like.device)
    return model_sampling.noise_scaling(sigma, torch.ones_like(like[:1]), torch.zeros_like(like[:1]),
                                        max_denoise(model_sampling, first_sigma))


def latent_to_model_space(model_patcher, samples: torch.Tensor) -> torch.Tensor:
    """VAE-space LATENT samples -> the model space samplers work in (CFGGuider skips all-zero latents too)."""
    if torch.count_nonzero(samples) == 0:
        return samples
    return model_patcher.model.process_latent_in(samples)


def throw_if_interrupted():
    comfy.model_management.throw_exception_if_processing_interrupted()
