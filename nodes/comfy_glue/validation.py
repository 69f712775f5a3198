"""Input checks at the pack's node boundaries, one function per concern, so every node and runtime path takes
the same decision on the same input and says what to connect instead of failing deep inside ComfyUI.

Pure checks where possible; the ComfyUI glue is limited to reading the model's latent format and sampling type.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import compat
from ..algo.spectral import detect_layout, grid_shape
from ..architectures import supported_families

SEED_MODULUS = 1 << 64     # ComfyUI's seed widgets go up to 2^64 - 1, as does torch.Generator.manual_seed


# ----------------------------------------------------------------------------------------------- finiteness
def finite(tensor: Optional[torch.Tensor], what: str):
    """ValueError naming `what` when the tensor holds NaN or Inf (which would otherwise come out as NaN video)."""
    if tensor is None or not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        return
    if not bool(torch.isfinite(tensor).all()):
        nan = int(torch.isnan(tensor).sum())
        inf = int(torch.isinf(tensor).sum())
        raise ValueError(f"the {what} contains non-finite values ({nan} NaN, {inf} Inf of {tensor.numel()}); "
                         "whatever produced it diverged or was corrupted: re-encode or regenerate it (check the "
                         "VAE, the upstream sampler and any node that edits latents)")


# ----------------------------------------------------------------------------------------------- latent vs model
def latent_format_name(model) -> str:
    return type(model.get_model_object("latent_format")).__name__


def latent_matches_model(model, samples: torch.Tensor, what: str = "latent"):
    """The latent's channel count must be the model's latent format's (after fix_empty_latent_channels, which
    only adapts all-zero latents)."""
    latent_format = model.get_model_object("latent_format")
    channels = int(latent_format.latent_channels)
    if samples.ndim < 4 or int(samples.shape[1]) != channels:
        raise ValueError(f"the {what} has shape {tuple(samples.shape)} ({samples.shape[1] if samples.ndim > 1 else '?'}"
                         f" channels) but this model's latent format {type(latent_format).__name__} has {channels} "
                         "channels; encode with this model's VAE (or use an empty latent made for this model)")


def trajectory_matches_model(model, trajectory_format: str, what: str = "trajectory"):
    """A trajectory is only meaningful for the latent format it was inverted in."""
    mine = latent_format_name(model)
    if trajectory_format and trajectory_format != mine:
        raise ValueError(f"the {what} was inverted with a model of latent format {trajectory_format}, but this model "
                         f"uses {mine}; run DDIM Invert with the model you edit with")


# ----------------------------------------------------------------------------------------------- schedules
def _flow(model_sampling) -> bool:
    import comfy.model_sampling
    return isinstance(model_sampling, comfy.model_sampling.CONST)


def _one_step_schedule(sigmas, what: str):
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"{what} must be a schedule of at least one step (e.g. from BasicScheduler)")


def schedule_matches_model(model, sigmas: torch.Tensor, what: str = "SIGMAS"):
    """SIGMAS must be a finite 1-D schedule inside the model's sigma range: [0, 1] for flow-matching (CONST)
    models, [0, sigma_max] (0.1 % tolerance) otherwise. A schedule made for another model family (a Karras
    schedule reaching 14.6 on a flow model) would otherwise be sampled or inverted without a word."""
    _one_step_schedule(sigmas, what)
    finite(sigmas, what)
    s = sigmas.detach().to("cpu", torch.float64)
    model_sampling = model.get_model_object("model_sampling")
    if _flow(model_sampling):
        top, family = 1.0, "flow-matching"
    else:
        top, family = float(model_sampling.sigma_max), "noise-prediction"
    low, high = float(s.min()), float(s.max())
    if low < 0.0 or high > top * (1.0 + 1e-3) + 1e-6:
        raise ValueError(f"{what} span {low:.4g} .. {high:.4g}, outside this {family} model's sigma range "
                         f"[0, {top:.4g}]: the schedule was made for another kind of model. Use BasicScheduler "
                         "(scheduler 'simple') with this model, or KSampler's own scheduler")


def descending_to_zero(sigmas: torch.Tensor, what: str = "SIGMAS"):
    """DDIM Invert's schedule: strictly descending and ending at sigma 0 (where the clean source sits)."""
    _one_step_schedule(sigmas, what)
    s = sigmas.detach().to("cpu", torch.float64)
    if not bool((s[1:] < s[:-1]).all()):
        raise ValueError(f"{what} must be strictly descending (a sampling schedule, not a flipped one); connect "
                         "the schedule the edit will use, e.g. BasicScheduler")
    if float(s[-1]) != 0.0:
        raise ValueError(f"{what} end at {float(s[-1]):.4g}; DDIM Invert starts from the clean source at sigma 0, so "
                         "connect a schedule that ends at 0 (a partial one such as SplitSigmas' low part is fine)")


def full_schedule_for_freeinit(sigmas: torch.Tensor):
    """FreeInit re-noises each pass's CLEAN result; a schedule that stops above sigma 0 (KSamplerAdvanced with
    leftover noise, SplitSigmas' high part) would hand it a still-noisy latent as if it were clean."""
    last = float(sigmas[-1])
    if last != 0.0:
        raise ValueError(f"FreeInit needs a schedule that ends at sigma 0, this one stops at {last:.4g} (a partial "
                         "schedule: KSamplerAdvanced returning leftover noise, or SplitSigmas' high part); sample "
                         "the whole schedule in one sampler with the FreeInit MODEL. For Wan 2.2 A14B's two experts "
                         "use the Wan Expert Pair Guider in SamplerCustomAdvanced: FreeInit on either expert then "
                         "runs every pass over both")


def noise_for_freeinit(noise: torch.Tensor):
    """FreeInit re-noises with the first pass's noise; zero noise (KSamplerAdvanced with add_noise off: the second
    sampler of a two-expert graph, continuing a latent) would re-noise with nothing."""
    if isinstance(noise, torch.Tensor) and torch.count_nonzero(noise) == 0:
        raise ValueError("FreeInit got zero noise (KSamplerAdvanced with add_noise disabled, e.g. the low-noise "
                         "expert's sampler of a two-sampler Wan 2.2 graph): it re-noises with the first pass's noise, "
                         "so it needs the whole schedule from fresh noise. For Wan 2.2 A14B use the Wan Expert Pair "
                         "Guider in SamplerCustomAdvanced, with FreeInit on either expert")


# ----------------------------------------------------------------------------------------------- seeds
def pass_seed(seed: Optional[int], index: int) -> int:
    """Seed of FreeInit pass `index`'s fresh noise: seed + index modulo 2^64, so the largest seed ComfyUI accepts
    (2^64 - 1) wraps to 0, 1, ... instead of overflowing; for every smaller seed it is plainly seed + index."""
    base = 0 if seed is None else int(seed)
    return (base + int(index)) % SEED_MODULUS


def seed(value, what: str = "seed") -> int:
    value = int(value)
    if not 0 <= value < SEED_MODULUS:
        raise ValueError(f"{what} {value} is outside 0 .. 2^64 - 1")
    return value


# ----------------------------------------------------------------------------------------------- video latents
def _freeinit_rank(samples, what: str):
    if not isinstance(samples, torch.Tensor) or samples.ndim not in (4, 5):
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"the {what} has shape {shape}; FreeInit needs a video latent [B,C,T,H,W] "
                         f"({supported_families()}) or a batch of frames [T,C,H,W] (AnimateDiff)")


def freeinit_video_latent(model, samples: torch.Tensor, what: str = "latent") -> Tuple[torch.Tensor, str, tuple]:
    """The latent as the sampler will see it (compat.fix_empty_latent_channels: a 4-D latent on a video model
    becomes [B,C,1,H,W]) plus (layout, (T, H, W)), or a ValueError saying what to connect. Both FreeInit nodes
    call this, so they accept and refuse the same latents."""
    _freeinit_rank(samples, what)
    finite(samples, what)
    was_frames = samples.ndim == 4
    if model is not None:
        samples = compat.fix_empty_latent_channels(model, samples)
        latent_matches_model(model, samples, what)
    return (samples,) + freeinit_grid(samples, what, from_frame_batch=was_frames)


def freeinit_grid(samples: torch.Tensor, what: str = "latent", from_frame_batch: bool = False) -> Tuple[str, tuple]:
    """(layout, (T, H, W)) of an already converted latent FreeInit can filter over time."""
    _freeinit_rank(samples, what)
    layout = detect_layout(samples)
    grid = grid_shape(samples, layout)
    if grid[0] < 2:
        hint = (" (a 4-D batch of frames on a video model is read as single-frame videos: use a video latent, "
                "e.g. EmptyHunyuanLatentVideo, or VAEEncode with this model's video VAE)" if from_frame_batch
                or (samples.ndim == 5 and samples.shape[0] > 1) else "")
        raise ValueError(f"the {what} has {grid[0]} latent frame{hint}; FreeInit filters over time and needs at "
                         "least 2. Use a video latent (e.g. EmptyHunyuanLatentVideo with length >= 5) or, for "
                         "AnimateDiff-style models, a batch of at least 2 frames")
    return layout, grid


def fade_video_latent(samples: torch.Tensor, what: str = "latent"):
    """FADE edits native 5-D video latents only (checked BEFORE fix_empty_latent_channels makes 4-D 5-D)."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 5:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"FADE edits native video latents [B,C,T,H,W]; this {what} has shape {shape}"
                         " (a 4-D image or frame-batch latent). Encode the video with a video model's VAE "
                         f"({supported_families()})")
    finite(samples, what)
