"""FreeInit's re-noise level per sampling type and the NOISE that starts a sampling pass at a re-initialised
latent."""
from __future__ import annotations

import torch

import comfy.sample

from ..algo import freeinit as core
from ..algo.spectral import LowPassFilter
from ..comfy_glue import compat, sampling, validation


def default_renoise_sigma(model_sampling) -> float:
    """The paper's re-noise level (see algo.freeinit): training sigma at t = 999 for discrete EPS/V models,
    the SD-SNR-matched sigma otherwise."""
    kind = sampling.parameterisation(model_sampling)
    if kind == core.FLOW:
        return core.FLOW_SNR_MATCHED_SIGMA
    if sampling.is_discrete_training_schedule(model_sampling):
        return float(model_sampling.sigma(torch.tensor(999.0)))
    return core.VE_SNR_MATCHED_SIGMA


def resolve_renoise_sigma(model_sampling, requested: float) -> float:
    """0 = automatic; otherwise validated against the model's sigma range."""
    kind = sampling.parameterisation(model_sampling)
    if requested <= 0.0:
        return default_renoise_sigma(model_sampling)
    if kind == core.FLOW and requested > 1.0:
        raise ValueError(f"renoise_sigma {requested} is above 1, the flow-matching maximum; use a value in (0, 1] "
                         f"(0 = automatic, {core.FLOW_SNR_MATCHED_SIGMA:.4f} for this model)")
    return float(requested)


def fresh_noise_like(reference: torch.Tensor, seed: int) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from `seed`, like ComfyUI's RandomNoise (reproducible anywhere)."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(reference.shape, generator=generator, dtype=torch.float32, device="cpu").to(
        reference.device, reference.dtype)


def reinitialised_noise(patcher, previous: torch.Tensor, first_noise: torch.Tensor, fresh_seed: int,
                        lpf: LowPassFilter, sigma_renoise: float, latent_image: torch.Tensor,
                        first_sigma: float) -> torch.Tensor:
    """The NOISE (float32) that makes a sampler whose schedule starts at `first_sigma` start at FreeInit's
    re-initialisation of `previous` (a finished pass, VAE space): low band of renoise(previous, first_noise),
    high band fresh noise from `fresh_seed`."""
    model_sampling = patcher.get_model_object("model_sampling")
    kind = sampling.parameterisation(model_sampling)
    z0 = patcher.model.process_latent_in(previous.to(torch.float32))
    first = first_noise.to(z0.device, torch.float32)
    fresh = fresh_noise_like(first, fresh_seed)
    mixed = core.reinitialise(z0, first, fresh, lpf, sigma_renoise, kind)
    return _noise_for_mixed(mixed, patcher, latent_image, model_sampling, first_sigma)


def _noise_for_mixed(mixed, patcher, latent_image, model_sampling, first_sigma):
    """Noise units -> the NOISE that makes a sampler start at the latent they stand for at first_sigma (the
    re-noise level when the pass starts there; at the schedule's maximum this is the old noise-unit scaling). The
    sampler's own scaling is inverted, so a start below the maximum (flow: x = s * noise) and a non-empty latent
    (added on top at a VE start) both come out right."""
    kind = sampling.parameterisation(model_sampling)
    target = core.latent_from_noise_units(mixed, first_sigma, kind)
    if latent_image is None or torch.count_nonzero(latent_image) == 0:
        latent_in = torch.zeros_like(mixed)
    else:
        latent_in = sampling.latent_to_model_space(patcher, latent_image.to(mixed.device, torch.float32))
    return sampling.noise_for_start(target, model_sampling, first_sigma, latent_in.to(mixed.device))


class ReinitialisedNoise:
    """NOISE for SamplerCustomAdvanced whose sample starts at the FreeInit re-initialisation of a finished pass
    (the FreeInit Noise Reinit node's output)."""

    def __init__(self, model, previous_samples, batch_index, lpf, first_seed, fresh_seed, renoise_sigma):
        self.seed = int(fresh_seed)
        self.model = model
        self.previous = previous_samples
        self.batch_index = batch_index
        self.lpf = lpf
        self.first_seed = int(first_seed)
        self.renoise_sigma = float(renoise_sigma)

    def generate_noise(self, input_latent):
        samples = compat.fix_empty_latent_channels(self.model, input_latent["samples"])
        validation.finite(samples, "latent being sampled")
        if samples.shape != self.previous.shape:
            raise ValueError(f"the latent being sampled has shape {tuple(samples.shape)} but the previous pass "
                             f"{tuple(self.previous.shape)}; connect the same (empty) latent as the first pass")
        model_sampling = self.model.get_model_object("model_sampling")
        sigma_renoise = resolve_renoise_sigma(model_sampling, self.renoise_sigma)
        first = comfy.sample.prepare_noise(self.previous, self.first_seed, self.batch_index).to(torch.float32)
        return reinitialised_noise(self.model, self.previous, first, self.seed, self.lpf, sigma_renoise, samples,
                                   float(model_sampling.sigma_max)).to(torch.float32)
