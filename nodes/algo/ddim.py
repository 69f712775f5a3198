"""Deterministic DDIM (eta = 0) sampling and inversion in ComfyUI's sigma parameterisation.

With an x0-predicting denoiser D(x, s), DDIM(eta = 0) is exactly the Euler step of the probability-flow ODE in
both sigma spaces ComfyUI uses (flow: x = (1 - s) x0 + s eps; variance-exploding: x = x0 + s eps):

    x_next = x + (s_next - s) * (x - D(x, s)) / s

Inversion walks an ascending schedule 0 = s_0 < s_1 < ... < s_N. The paper's plain DDIM inversion (refine = 0)
takes the noise estimate at the *next* level from the current latent (diffusers' DDIMInverseScheduler):

    eps = noise estimate of D(q, s_{i+1}),  q = x_i (flow) or x_i * sqrt((1 + s_{i+1}^2) / (1 + s_i^2)) (VE,
          the VP rescaling diffusers applies when it feeds x_{t-1} at t)
    x_{i+1} = the forward-diffused latent at s_{i+1} with x0 = x0(x_i, eps, s_i) and that eps

which leaves an O(1/steps) round-trip error against the Euler sampler. `refine` fixed-point iterations solve the
exact inverse of the sampler's own step,

    x_{i+1} = x_i + (s_{i+1} - s_i) * (x_{i+1} - D(x_{i+1}, s_{i+1})) / s_{i+1},

at one model call each. Nothing here divides by (1 - s) at s = 1: the flow form divides by (1 - s_i) only at the
lower end of a step, where s_i < s_{i+1} <= 1.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .freeinit import FLOW, VARIANCE_EXPLODING

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # D(x, sigma[B]) -> x0 estimate


def euler_step(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
               ) -> torch.Tensor:
    """One DDIM(eta=0) == Euler step, written with the same operations as k-diffusion's sample_euler so that the
    result is bit-identical to ComfyUI's 'ddim' / 'euler' samplers."""
    d = (x - denoised) / sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim))
    return x + d * (sigma_next - sigma)


def noise_estimate(x: torch.Tensor, denoised: torch.Tensor, sigma: float, parameterisation: str) -> torch.Tensor:
    """eps such that x is the forward-diffused denoised at sigma (sigma > 0)."""
    if parameterisation == FLOW:
        return (x - (1.0 - sigma) * denoised) / sigma
    return (x - denoised) / sigma


def diffuse(x0: torch.Tensor, eps: torch.Tensor, sigma: float, parameterisation: str) -> torch.Tensor:
    """Forward-diffused latent at sigma in the model's x-space."""
    if parameterisation == FLOW:
        return (1.0 - sigma) * x0 + sigma * eps
    return x0 + sigma * eps


def inversion_step(x: torch.Tensor, sigma: float, sigma_next: float, denoise: Denoiser, parameterisation: str,
                   refine: int = 0, on_model_call: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """One step of DDIM inversion from level sigma up to sigma_next > sigma (see module doc).

    x: the latent at sigma in model space. denoise(x, s) must return the x0 estimate with CFG applied.
    Returns the latent at sigma_next. Makes 1 + refine model calls; on_model_call runs before each (progress,
    interruption).
    """
    if not sigma_next > sigma:
        raise ValueError(f"inversion needs an ascending schedule, got {sigma} -> {sigma_next}")
    if parameterisation not in (FLOW, VARIANCE_EXPLODING):
        raise ValueError(f"unknown parameterisation {parameterisation!r}")
    sig_next = torch.full((x.shape[0],), float(sigma_next), device=x.device, dtype=x.dtype)

    def call(q):
        if on_model_call is not None:
            on_model_call()
        return denoise(q, sig_next)

    if parameterisation == FLOW:
        query = x
    else:
        query = x * math.sqrt((1.0 + sigma_next ** 2) / (1.0 + sigma ** 2))
    eps = noise_estimate(query, call(query), sigma_next, parameterisation)
    if parameterisation == FLOW:
        x0 = (x - sigma * eps) / (1.0 - sigma)
    else:
        x0 = x - sigma * eps
    x_next = diffuse(x0, eps, sigma_next, parameterisation)

    # Fixed point of the sampler's own step: x_next + (sigma - sigma_next) * d(x_next) == x.
    for _ in range(int(refine)):
        d = (x_next - call(x_next)) / sigma_next
        x_next = x + (sigma_next - sigma) * d
    return x_next


def ascending(sigmas: torch.Tensor) -> torch.Tensor:
    """The descending sampling schedule reversed for inversion (0 first)."""
    return sigmas.flip(0)
