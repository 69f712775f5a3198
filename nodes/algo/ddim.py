"""Deterministic DDIM (eta = 0) sampling and inversion in ComfyUI's sigma parameterisation.

With an x0-predicting denoiser D(x, s), DDIM(eta = 0) is exactly the Euler step of the probability-flow ODE in
both sigma spaces ComfyUI uses (flow: x = (1 - s) x0 + s eps; variance-exploding: x = x0 + s eps):

    x_next = x + (s_next - s) * (x - D(x, s)) / s

Inversion walks an ascending schedule 0 = s_0 < s_1 < ... < s_N. Plain DDIM inversion (refine = 0) is diffusers'
DDIMInverseScheduler (Apache-2.0; the scheme the official FADE code uses): the model is queried at the *next*
level with the current latent, and its output is decomposed into (x0, eps) with the *current* level's
coefficients before re-diffusing to the next level. What that means depends on what the model predicts:

    flow (a velocity model, v = eps - x0):  x_{i+1} = x_i + (s_{i+1} - s_i) * v(x_i, s_{i+1}),
                                             v(q, s) = (q - D(q, s)) / s
    VE (an eps model):  eps = noise estimate of D(q, s_{i+1}) at q = x_i * sqrt((1 + s_{i+1}^2) / (1 + s_i^2))
                        (the VP rescaling diffusers applies when it feeds x_{t-1} at t),
                        x_{i+1} = diffuse(x0 = x_i - s_i * eps, eps, s_{i+1})

Both leave an O(1/steps) round-trip error against the Euler sampler. `refine` iterations solve the exact inverse
of the sampler's own step, the fixed point of

    g(y) = x_i + (s_{i+1} - s_i) * (y - D(y, s_{i+1})) / s_{i+1},

at one model call each. The flow form above is g(x_i), the first fixed-point iterate from x_i. Plain iteration
contracts by the spectral radius of (s_{i+1} - s_i) / s_{i+1} * (1 - D'), which is large on the first step up from
sigma 0 (there g(y) = x + y - D(y): 1 - D' ~ 0.55 on Gaussian data at shift 8 and 10 steps), so the iterates are
combined by Anderson acceleration (type II over the last few residuals, per batch item, with the plain step where
the residual grew). Nothing guarantees convergence of that iteration: where the model's velocity is steep, the
last extrapolation can land far off, and even exact steps can compound badly (below).

The exact-step inverse of a clean source drifts toward (1 - s) x0, a faint noise-free copy of it that is far from
what the model saw in training at high sigma; on a model that is unstable there, a step's error is amplified on the
way down. Per-step safeguards cannot see that (returning each step's best-residual iterate instead of the last
extrapolation was measured and lost accuracy on both trained models), so `euler_descent` and `relative_error` let
the runtime verify the whole trajectory by one round trip and keep, per item, whichever of the refined and the plain
inversion reproduces the source better. Nothing here divides by (1 - s).
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


ANDERSON_HISTORY = 4   # past (y, g(y)) pairs Anderson combines; each keeps two latents in memory


def _anderson(points, images, previous_residual):
    """The next iterate from fixed-point pairs (y_j, g(y_j)), oldest first, per batch item (type-II Anderson):
    g(y_k) - dG gamma with gamma the least-squares fit of the last residual f_k = g(y_k) - y_k by the residual
    differences dF. Items whose residual grew since the previous pair take the plain step g(y_k).
    Returns (next iterate, |f_k| per item)."""
    b = points[-1].shape[0]
    f = [(g - y).reshape(b, -1).to(torch.float64) for y, g in zip(points, images)]
    norm = f[-1].norm(dim=1)
    if len(points) < 2:
        return images[-1], norm
    d_f = torch.stack([f[j + 1] - f[j] for j in range(len(f) - 1)], dim=2)                     # [B, N, m]
    d_g = torch.stack([(images[j + 1] - images[j]).reshape(b, -1).to(torch.float64)
                       for j in range(len(f) - 1)], dim=2)
    gram = d_f.transpose(1, 2) @ d_f                                                          # [B, m, m]
    scale = gram.diagonal(dim1=1, dim2=2).sum(dim=1)
    # Ridge term: residual differences become nearly parallel (or vanish) once the iteration has converged.
    ridge = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device) * (1e-10 * scale + 1e-200)[:, None, None]
    gamma = torch.linalg.solve(gram + ridge, d_f.transpose(1, 2) @ f[-1].unsqueeze(2))        # [B, m, 1]
    usable = torch.isfinite(gamma).all(dim=1).squeeze(1) & (scale > 0)
    if previous_residual is not None:
        usable &= norm <= previous_residual
    gamma = torch.where(usable[:, None, None], gamma, torch.zeros_like(gamma))
    step = (d_g @ gamma).squeeze(2).reshape(images[-1].shape).to(images[-1].dtype)
    return images[-1] - step, norm


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

    def fixed_point_map(y):   # y == g(y) is the exact inverse of the sampler's step
        return x + (sigma_next - sigma) * ((y - call(y)) / sigma_next)

    if parameterisation == FLOW:
        points, images = [x], [fixed_point_map(x)]          # g(x): the velocity form, one call
    else:
        query = x * math.sqrt((1.0 + sigma_next ** 2) / (1.0 + sigma ** 2))
        eps = noise_estimate(query, call(query), sigma_next, parameterisation)
        points, images = [diffuse(x - sigma * eps, eps, sigma_next, parameterisation)], []
    if refine <= 0:
        return images[0] if images else points[0]
    if not images:
        images.append(fixed_point_map(points[0]))
        refine -= 1
    residual = None
    for _ in range(int(refine)):
        y, residual = _anderson(points, images, residual)
        points, images = (points + [y])[-ANDERSON_HISTORY - 1:], (images + [fixed_point_map(y)])[-ANDERSON_HISTORY - 1:]
    return _anderson(points, images, residual)[0]


def euler_descent(x: torch.Tensor, descending: torch.Tensor, denoise: Denoiser,
                  on_model_call: Optional[Callable[[], None]] = None,
                  on_step: Optional[Callable[[torch.Tensor], None]] = None) -> torch.Tensor:
    """The sampler's own path down a descending schedule from x (DDIM eta = 0 == Euler; one model call a step):
    the round trip that checks an inversion. on_model_call runs before each call, on_step(x) after each step."""
    levels = descending.to(x.device, x.dtype)
    for i in range(levels.shape[-1] - 1):
        if on_model_call is not None:
            on_model_call()
        x = euler_step(x, denoise(x, levels[i].expand(x.shape[0])), levels[i], levels[i + 1])
        if on_step is not None:
            on_step(x)
    return x


def relative_error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|estimate - target| / |target| per batch item (float64)."""
    b = target.shape[0]
    diff = (estimate - target).reshape(b, -1).to(torch.float64).norm(dim=1)
    return diff / target.reshape(b, -1).to(torch.float64).norm(dim=1).clamp_min(1e-30)


def choose_per_item(use_second: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """second where use_second[b] else first, per batch item."""
    mask = use_second.to(first.device).reshape((-1,) + (1,) * (first.ndim - 1))
    return torch.where(mask, second.to(first.dtype), first)


def ascending(sigmas: torch.Tensor) -> torch.Tensor:
    """The descending sampling schedule reversed for inversion (0 first)."""
    return sigmas.flip(0)
