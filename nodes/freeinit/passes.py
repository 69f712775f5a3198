"""FreeInit's pass loop and the OUTER_SAMPLE wrapper that runs any sampler through it.

FreeInit: arXiv 2312.07537, official code (MIT) TianxingWu/FreeInit; the mathematics is in algo/freeinit.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, List

import torch

import comfy.model_management
import comfy.sampler_helpers

from . import renoise
from ..algo import freeinit as core
from ..algo.spectral import LowPassFilter
from ..comfy_glue import progress, sampling, validation

log = logging.getLogger("FADE")

# sample_pass(noise, sigmas, callback) -> the pass's result (VAE space, as a sampler returns it)
SamplePass = Callable[[torch.Tensor, torch.Tensor, object], torch.Tensor]


@dataclass(frozen=True)
class FreeInitSettings:
    passes: int
    lpf: LowPassFilter
    renoise_sigma: float          # 0 = automatic (renoise.default_renoise_sigma)
    coarse_to_fine: bool


def pass_step_counts(settings: FreeInitSettings, steps: int) -> List[int]:
    return [core.coarse_to_fine_steps(steps, i, settings.passes) if settings.coarse_to_fine else steps
            for i in range(settings.passes)]


def pass_schedule(settings: FreeInitSettings, sigmas: torch.Tensor, steps: int, start_sigma=None) -> torch.Tensor:
    """The schedule one pass samples with. A later pass (start_sigma: the re-noise level) starts where its latent
    was re-noised to, with the same step count (algo.freeinit.start_schedule)."""
    pass_sigmas = core.resample_schedule(sigmas, steps) if settings.coarse_to_fine else sigmas
    return pass_sigmas if start_sigma is None else core.start_schedule(pass_sigmas, start_sigma)


def run_passes(settings: FreeInitSettings, patcher, noise: torch.Tensor, latent_image: torch.Tensor,
               sigmas: torch.Tensor, seed, callback, sample_pass: SamplePass, denoise_mask=None) -> torch.Tensor:
    """Sample `settings.passes` times with FreeInit re-initialisation between passes.

    patcher: the MODEL whose latent format and sampling type decide the re-noising (for an expert pair, the one
    that produces the clean result). sample_pass runs one whole pass (every expert) and returns its clean result.
    Everything per run is local, so nothing persists after an error or an interrupt.
    """
    model_sampling = patcher.get_model_object("model_sampling")
    kind = sampling.parameterisation(model_sampling)
    sigma_renoise = renoise.resolve_renoise_sigma(model_sampling, settings.renoise_sigma)
    # The sampler has already applied fix_empty_latent_channels, so this is the same decision as the
    # Noise Reinit node's validation.freeinit_video_latent.
    validation.finite(latent_image, "latent being sampled")
    validation.finite(noise, "noise")
    validation.finite(denoise_mask, "noise mask")
    validation.latent_matches_model(patcher, latent_image, "latent being sampled")
    validation.freeinit_grid(latent_image, "latent being sampled")
    validation.schedule_matches_model(patcher, sigmas)
    validation.full_schedule_for_freeinit(sigmas)
    validation.noise_for_freeinit(noise)
    step_counts = pass_step_counts(settings, len(sigmas) - 1)
    total = sum(step_counts)
    log.info("FreeInit: %d passes, %s, re-noise sigma %.4f (%s), steps per pass %s", settings.passes,
             settings.lpf.describe(), sigma_renoise, kind, step_counts)

    result = first_result = None
    done = 0
    for index in range(settings.passes):
        sampling.throw_if_interrupted()
        progress.send_node_text(f"FreeInit pass {index + 1}/{settings.passes}")
        pass_sigmas = pass_schedule(settings, sigmas, step_counts[index], sigma_renoise if index else None)
        if index == 0:
            pass_noise = noise
        else:
            validation.finite(result, f"result of FreeInit pass {index}")
            pass_noise = renoise.reinitialised_noise(
                patcher, result, noise, validation.pass_seed(seed, index), settings.lpf, sigma_renoise,
                latent_image, float(pass_sigmas[0])).to(noise.dtype)
            comfy.model_management.soft_empty_cache()
        result = sample_pass(pass_noise, pass_sigmas, progress.offset_callback(callback, done, total))
        first_result = result if index == 0 else first_result
        done += step_counts[index]
    progress.send_node_text(f"FreeInit: {settings.passes} passes done")
    return keep_pinned_frames(result, first_result, denoise_mask)


def keep_pinned_frames(result: torch.Tensor, first_result: torch.Tensor, denoise_mask) -> torch.Tensor:
    """Where the noise mask pins the latent completely (0: an image-to-video start frame, Wan 2.2 TI2V 5B), the
    result keeps the first pass's values: the sampler pins the model's input there, so every pass lands on the
    conditioning image up to rounding, and the first pass's rounding is the stock sampler's (later passes start at
    the re-noise sigma). Partly masked elements (0 < mask < 1) are the last pass's, as any other."""
    if denoise_mask is None or first_result is None or first_result is result:
        return result
    mask = comfy.sampler_helpers.prepare_mask(denoise_mask, result.shape, result.device)
    return torch.where(mask == 0, first_result.to(result.device, result.dtype), result)


class FreeInitSampling:
    """OUTER_SAMPLE wrapper: runs the wrapped sampling through run_passes. Holds only its settings."""

    def __init__(self, settings: FreeInitSettings):
        self.settings = settings

    def __call__(self, executor, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                 disable_pbar=False, seed=None, *args, **kwargs):
        # *args / **kwargs: whatever newer hosts add (v0.8+: latent_shapes=) is passed on to every pass unchanged.
        if self.settings.passes <= 1:
            return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                            *args, **kwargs)

        def sample_pass(pass_noise, pass_sigmas, pass_callback):
            return executor(pass_noise, latent_image, sampler, pass_sigmas, denoise_mask, pass_callback,
                            disable_pbar, seed, *args, **kwargs)

        return run_passes(self.settings, executor.class_obj.model_patcher, noise, latent_image, sigmas, seed,
                          callback, sample_pass, denoise_mask)
