"""FreeInit noise re-initialisation (arXiv 2312.07537; official code MIT, TianxingWu/FreeInit), in sigma space.

Between two sampling passes FreeInit re-noises the previous result z0 to a high noise level with the FIRST pass's
noise, keeps the spatio-temporal low band of that, and fills the high band with fresh noise:

    z'_T = IFFT( M * FFT(renoise(z0, eps_0, sigma_T)) + (1 - M) * FFT(eta) )

Everything here is in "noise units": the tensor a NOISE object hands to the sampler, which the sampler scales to
its starting level. For flow-matching models (x = (1 - s) x0 + s eps, sigma_max = 1) noise units are x itself;
for variance-exploding sigma spaces (x = x0 + s eps: EPS, V, EDM and Cosmos RFlow models) they are
x / sqrt(1 + s^2), the variance-preserving latent the original method works with (diffusers' add_noise).

Default re-noise level. The paper re-noises at t = 999 of the SD/AnimateDiff schedule, sqrt(alphabar) = 0.04-0.07.
For discrete EPS/V models we use the model's own training sigma at t = 999. A flow model at sigma = 1 would keep
nothing, so for flow models we use the sigma with the same signal-to-noise ratio as SD's default
(sigma_SD = 14.6146, sqrt(alphabar) = 0.0683): (1 - s) / s = 1 / sigma_SD  =>  s = sigma_SD / (1 + sigma_SD) = 0.93596.
Continuous VE models (EDM, Cosmos) get sigma_SD itself.
"""
from __future__ import annotations

import math

import torch

from .spectral import LowPassFilter, frequency_mix

# SD 1.x scaled_linear betas (0.00085 -> 0.012, 1000 steps): sigma at t = 999.
SD_SIGMA_AT_T999 = 14.614641
FLOW_SNR_MATCHED_SIGMA = SD_SIGMA_AT_T999 / (1.0 + SD_SIGMA_AT_T999)  # 0.935957
VE_SNR_MATCHED_SIGMA = SD_SIGMA_AT_T999

FLOW = "flow"                  # x = (1 - s) x0 + s eps
VARIANCE_EXPLODING = "ve"      # x = x0 + s eps


def renoise(z0: torch.Tensor, noise: torch.Tensor, sigma: float, parameterisation: str) -> torch.Tensor:
    """Forward-diffuse z0 to `sigma` with `noise`, returned in noise units (see module doc)."""
    if parameterisation == FLOW:
        if not 0.0 < sigma <= 1.0:
            raise ValueError(f"a flow-matching re-noise sigma must lie in (0, 1], got {sigma}")
        return (1.0 - sigma) * z0 + sigma * noise
    if parameterisation == VARIANCE_EXPLODING:
        if sigma <= 0.0:
            raise ValueError(f"re-noise sigma must be > 0, got {sigma}")
        return (z0 + sigma * noise) / math.sqrt(1.0 + sigma * sigma)
    raise ValueError(f"unknown parameterisation {parameterisation!r}")


def signal_fraction(sigma: float, parameterisation: str) -> float:
    """How much of z0's amplitude survives re-noising at sigma (sqrt(alphabar) in the paper's terms)."""
    if parameterisation == FLOW:
        return 1.0 - sigma
    return 1.0 / math.sqrt(1.0 + sigma * sigma)


def reinitialise(z0: torch.Tensor, first_noise: torch.Tensor, fresh_noise: torch.Tensor, lpf: LowPassFilter,
                 sigma: float, parameterisation: str) -> torch.Tensor:
    """The FreeInit starting noise: low band of renoise(z0, first_noise), high band of fresh_noise.

    z0: the previous pass's result in the model's latent space ([B,C,T,H,W] or a [T,C,H,W] frame batch).
    first_noise, fresh_noise: standard normal tensors of z0's shape. Returns noise units, z0's dtype; the FFT runs
    in float32.
    """
    for name, t in (("first_noise", first_noise), ("fresh_noise", fresh_noise)):
        if t.shape != z0.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, the latent {tuple(z0.shape)}")
    noised = renoise(z0.to(torch.float32), first_noise.to(torch.float32), sigma, parameterisation)
    return frequency_mix(noised, fresh_noise.to(torch.float32), lpf).to(z0.dtype)


def coarse_to_fine_steps(total_steps: int, pass_index: int, passes: int) -> int:
    """Steps for pass i (0-based) of N with the official 'fast sampling' (use_fast_sampling):
    int(steps / N * (i + 1)), e.g. 8 / 16 / 25 of 25 steps in 3 passes; at least 1, and the last pass always runs
    every step (the float product can land just below it)."""
    if pass_index >= passes - 1:
        return total_steps
    return max(1, int(total_steps / passes * (pass_index + 1)))


def resample_schedule(sigmas: torch.Tensor, steps: int) -> torch.Tensor:
    """A `steps`-step version of a descending sigma schedule with the same shape.

    The schedule is read as a piecewise-linear function of the step position in [0, 1] and sampled at steps + 1
    evenly spaced positions, so its end points, shift and spacing carry over whatever scheduler made it.
    """
    n = sigmas.numel() - 1
    if steps >= n:
        return sigmas
    s = sigmas.detach().to("cpu", torch.float64)
    out = _schedule_at(s, torch.linspace(0.0, float(n), steps + 1, dtype=torch.float64))
    out[-1] = s[-1]
    return out.to(sigmas.device, sigmas.dtype)


def _schedule_at(s: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """A float64 schedule read as a piecewise-linear function of the step position, at `position` (0 .. n)."""
    n = s.numel() - 1
    lower = position.floor().clamp(max=n - 1).long()
    frac = position - lower.to(torch.float64)
    return s[lower] * (1.0 - frac) + s[lower + 1] * frac


def start_schedule(sigmas: torch.Tensor, sigma_start: float) -> torch.Tensor:
    """The same number of steps as the descending `sigmas`, from `sigma_start` down along the same curve.

    A later FreeInit pass starts from a latent re-noised to sigma_start, so its sampler must start there too: a
    flow model started at sigma 1 reads the 6.4 % of the previous result that survives re-noising at 0.936 as
    extra signal it never sees at sigma 1, and the passes drift (objects grow, backgrounds leave the training
    range). The schedule is read as a piecewise-linear function of the step position (as resample_schedule) and
    sampled at evenly spaced positions from where it crosses sigma_start; at or above the first sigma it is
    returned unchanged.
    """
    s = sigmas.detach().to("cpu", torch.float64)
    n = s.numel() - 1
    if n < 1 or sigma_start >= float(s[0]) * (1.0 - 1e-6):    # (EPS: the t = 999 sigma is the schedule's top)
        return sigmas
    # first segment [i, i + 1] with s[i] >= sigma_start > s[i + 1]
    below = torch.nonzero(s < sigma_start).flatten()
    i = int(below[0]) - 1
    start = i + (float(s[i]) - sigma_start) / (float(s[i]) - float(s[i + 1]))
    out = _schedule_at(s, torch.linspace(start, float(n), n + 1, dtype=torch.float64))
    out[0], out[-1] = sigma_start, s[-1]
    return out.to(sigmas.device, sigmas.dtype)


def latent_from_noise_units(mixed: torch.Tensor, sigma: float, parameterisation: str) -> torch.Tensor:
    """The model-space latent at `sigma` that a re-initialisation in noise units (see module doc) stands for."""
    if parameterisation == FLOW:
        return mixed
    return mixed * math.sqrt(1.0 + sigma * sigma)
