"""Splitting one sampling schedule between two experts (Wan 2.2 A14B: a high-noise and a low-noise model).

Wan 2.2 switches experts on the timestep t = 1000 * sigma of its shifted flow schedule: the high-noise expert
samples every step that STARTS at a sigma at or above the boundary (official: 0.875 text-to-video, 0.900
image-to-video), the low-noise expert the rest. A step is named by its start sigma because that is where the
sampler evaluates the model; DDIM inversion evaluates its step (sigma -> sigma') at sigma', the start of the
sampling step it undoes, so the same rule picks the expert for it.
"""
from __future__ import annotations

import torch

HIGH = "high"
LOW = "low"


def expert_for_sigma(sigma: float, boundary: float) -> str:
    """Which expert evaluates the model at `sigma`."""
    return HIGH if float(sigma) >= float(boundary) else LOW


def split_step(sigmas: torch.Tensor, boundary: float) -> int:
    """Number of leading steps of the descending schedule `sigmas` (N + 1 values, N steps) that the high-noise
    expert samples: steps 0 .. split-1 start at sigma >= boundary, steps split .. N-1 below it. 0 means the low
    expert samples everything, N the high expert."""
    starts = sigmas.detach().to("cpu", torch.float64)[:-1]
    below = (starts < float(boundary)).nonzero()
    return int(below[0]) if below.numel() else int(starts.numel())
