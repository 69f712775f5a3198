"""FreeInit nodes: the model patch (runs any sampler several times) and the by-hand NOISE re-initialiser.

FreeInit: arXiv 2312.07537, official code (MIT) TianxingWu/FreeInit; the mathematics is re-derived in algo/.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
from comfy_api.latest import io

from . import compat, host, validation
from .algo import freeinit as core
from .algo.spectral import DEFAULT_FILTER, LowPassFilter
from .types import CATEGORY_FREEINIT, Filter

log = logging.getLogger("FADE")

RENOISE_TOOLTIP = (
    "Noise level sigma_T the previous result is re-noised to before its low band is kept. 0 = automatic, the "
    "paper's setting: the model's training sigma at t=999 for EPS/v-prediction models (14.61 for SD1.5, i.e. "
    f"{core.signal_fraction(core.SD_SIGMA_AT_T999, core.VARIANCE_EXPLODING):.3f} of the signal survives); for "
    f"flow-matching models (Wan, HunyuanVideo, LTXV, Mochi, Cosmos Predict2), where sigma=1 keeps nothing, the "
    f"sigma with the same signal-to-noise ratio, {core.FLOW_SNR_MATCHED_SIGMA:.4f} (keeps "
    f"{core.signal_fraction(core.FLOW_SNR_MATCHED_SIGMA, core.FLOW):.3f} of the signal); for EDM models (Cosmos 1.0) "
    f"{core.VE_SNR_MATCHED_SIGMA:.2f}. Lower values keep more of the previous pass.")


def fresh_noise_like(reference: torch.Tensor, seed: int) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from `seed`, like ComfyUI's RandomNoise (reproducible anywhere)."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(reference.shape, generator=generator, dtype=torch.float32, device="cpu").to(
        reference.device, reference.dtype)


def send_node_text(text: str):
    """Status text on the node being executed (the sampler node), when running under the ComfyUI server."""
    try:
        from comfy_execution.utils import get_executing_context
        import server
        context = get_executing_context()
        instance = getattr(server.PromptServer, "instance", None)
        if context is not None and instance is not None and hasattr(instance, "send_progress_text"):
            instance.send_progress_text(text, context.node_id)
    except Exception as error:   # a status line must never break sampling
        log.debug("could not send node text: %s", error)


class FreeInitSampling:
    """OUTER_SAMPLE wrapper: runs the wrapped sampling `passes` times with FreeInit re-initialisation between.

    Holds only settings; everything per run is local, so nothing persists after an error or an interrupt.
    """

    def __init__(self, passes: int, lpf: LowPassFilter, renoise_sigma: float, coarse_to_fine: bool):
        self.passes = int(passes)
        self.lpf = lpf
        self.renoise_sigma = float(renoise_sigma)
        self.coarse_to_fine = bool(coarse_to_fine)

    def __call__(self, executor, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                 disable_pbar=False, seed=None, *args, **kwargs):
        # *args / **kwargs: whatever newer hosts add (v0.8+: latent_shapes=) is passed on to every pass unchanged.
        if self.passes <= 1:
            return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                            *args, **kwargs)
        guider = executor.class_obj
        patcher = guider.model_patcher
        model_sampling = patcher.get_model_object("model_sampling")
        kind = host.parameterisation(model_sampling)
        sigma_renoise = host.resolve_renoise_sigma(model_sampling, self.renoise_sigma)
        # The sampler has already applied fix_empty_latent_channels, so this is the same decision as the
        # Noise Reinit node's validation.freeinit_video_latent.
        validation.finite(latent_image, "latent being sampled")
        validation.finite(noise, "noise")
        validation.finite(denoise_mask, "noise mask")
        validation.latent_matches_model(patcher, latent_image, "latent being sampled")
        validation.freeinit_grid(latent_image, "latent being sampled")
        validation.schedule_matches_model(patcher, sigmas)
        validation.full_schedule_for_freeinit(sigmas)
        steps = len(sigmas) - 1
        pass_steps = [core.coarse_to_fine_steps(steps, i, self.passes) if self.coarse_to_fine else steps
                      for i in range(self.passes)]
        total = sum(pass_steps)
        log.info("FreeInit: %d passes, %s, re-noise sigma %.4f (%s), steps per pass %s", self.passes,
                 self.lpf.describe(), sigma_renoise, kind, pass_steps)

        first_noise = noise
        result = None
        done = 0
        for index in range(self.passes):
            host.throw_if_interrupted()
            send_node_text(f"FreeInit pass {index + 1}/{self.passes}")
            if index == 0:
                pass_noise = first_noise
            else:
                validation.finite(result, f"result of FreeInit pass {index}")
                pass_noise = self._reinitialise(patcher, result, first_noise, validation.pass_seed(seed, index),
                                                sigma_renoise, kind, latent_image, model_sampling, sigmas)
                comfy.model_management.soft_empty_cache()
            pass_sigmas = core.resample_schedule(sigmas, pass_steps[index]) if self.coarse_to_fine else sigmas
            result = executor(pass_noise, latent_image, sampler, pass_sigmas, denoise_mask,
                              _offset_callback(callback, done, total), disable_pbar, seed, *args, **kwargs)
            done += pass_steps[index]
        send_node_text(f"FreeInit: {self.passes} passes done")
        return result

    def _reinitialise(self, patcher, previous, first_noise, fresh_seed, sigma_renoise, kind, latent_image,
                      model_sampling, sigmas):
        z0 = patcher.model.process_latent_in(previous.to(torch.float32))
        first = first_noise.to(z0.device, torch.float32)
        fresh = fresh_noise_like(first, fresh_seed)
        mixed = core.reinitialise(z0, first, fresh, self.lpf, sigma_renoise, kind)
        return _compensate_latent(mixed, patcher, latent_image, model_sampling, float(sigmas[0])).to(
            first_noise.dtype)


def _compensate_latent(mixed, patcher, latent_image, model_sampling, first_sigma):
    """Noise units -> the NOISE a sampler turns into that start. With an empty latent (text-to-video) and a flow
    model the two agree; a non-empty latent at a VE start would be added on top, so take it out."""
    if latent_image is None or torch.count_nonzero(latent_image) == 0:
        return mixed
    latent_in = host.latent_to_model_space(patcher, latent_image.to(mixed.device, torch.float32))
    unit = model_sampling.noise_scaling(torch.tensor([first_sigma], device=mixed.device),
                                        torch.ones_like(mixed[:1]), torch.zeros_like(mixed[:1]),
                                        host.max_denoise(model_sampling, first_sigma))
    return host.noise_for_start(mixed * unit, model_sampling, first_sigma, latent_in.to(mixed.device))


def _offset_callback(callback, offset: int, total: int):
    """One progress bar over every pass: forward each step as step `offset + i` of `total`."""
    if callback is None:
        return None

    def forward(step, x0, x, total_steps, *args, **kwargs):
        return callback(offset + step, x0, x, total, *args, **kwargs)
    return forward


class FreeInit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_FreeInit",
            display_name="FreeInit",
            category=CATEGORY_FREEINIT,
            description=(
                "FreeInit (arXiv 2312.07537) for any sampler node: the returned MODEL makes KSampler, "
                "KSamplerAdvanced or SamplerCustomAdvanced sample several passes. Between passes the result is "
                "re-noised with the first pass's noise, its spatio-temporal low frequencies are kept and the high "
                "frequencies are drawn fresh (seed + pass index, modulo 2^64). Improves temporal consistency; costs "
                "one full sampling per pass. Needs a schedule that ends at sigma 0 (not a partial one). Applied to a "
                "MODEL that already has FreeInit, it replaces the earlier settings. Works on native 5-D video "
                "latents (Wan, HunyuanVideo, LTXV, Mochi, Cosmos) and 4-D frame batches (AnimateDiff), for "
                "flow-matching and EPS models."),
            inputs=[
                io.Model.Input("model", tooltip="The video model to sample with FreeInit."),
                io.Int.Input("passes", default=3, min=1, max=10,
                             tooltip="Sampling passes; 1 = FreeInit off. 3 (two re-initialisations) is diffusers' "
                                     "default; the paper reports gains up to 5. Time grows with every pass."),
                io.Float.Input("renoise_sigma", default=0.0, min=0.0, max=1000.0, step=0.001,
                               tooltip=RENOISE_TOOLTIP),
                io.Boolean.Input("coarse_to_fine", default=False,
                                 tooltip="The official 'fast sampling': pass i of N uses int(steps/N*(i+1)) steps, "
                                         "the last pass all of them (the schedule is resampled, keeping its shape). "
                                         "Faster; the authors warn quality can drop."),
                Filter.Input("filter", optional=True,
                             tooltip="Low-pass filter deciding what survives between passes. Unconnected: "
                                     "gaussian, d_s = d_t = 0.25 (the paper)."),
            ],
            outputs=[io.Model.Output(tooltip="The model, cloned, with FreeInit attached (the input is unchanged).")],
        )

    @classmethod
    def execute(cls, model, passes: int, renoise_sigma: float, coarse_to_fine: bool,
                filter: Optional[LowPassFilter] = None) -> io.NodeOutput:
        model_sampling = model.get_model_object("model_sampling")
        host.resolve_renoise_sigma(model_sampling, renoise_sigma)   # validates type and range up front
        patched = model.clone()
        # Stacking: a second FreeInit replaces the first (on the clone only) instead of multiplying the passes.
        if host.remove_pack_wrappers(patched, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, FreeInitSampling):
            log.info("FreeInit: this MODEL already had FreeInit attached; the new settings replace it")
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, host.PACK_KEY,
                                     FreeInitSampling(passes, filter or DEFAULT_FILTER, renoise_sigma, coarse_to_fine))
        return io.NodeOutput(patched)


class ReinitialisedNoise:
    """NOISE for SamplerCustomAdvanced whose sample starts at the FreeInit re-initialisation of a finished pass."""

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
        kind = host.parameterisation(model_sampling)
        sigma_renoise = host.resolve_renoise_sigma(model_sampling, self.renoise_sigma)
        first = comfy.sample.prepare_noise(self.previous, self.first_seed, self.batch_index).to(torch.float32)
        fresh = fresh_noise_like(first, self.seed)
        z0 = self.model.model.process_latent_in(self.previous.to(torch.float32))
        mixed = core.reinitialise(z0, first, fresh, self.lpf, sigma_renoise, kind)
        top = float(model_sampling.sigma_max)
        return _compensate_latent(mixed, self.model, samples, model_sampling, top).to(torch.float32)


class FreeInitNoiseReinit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_FreeInitNoiseReinit",
            display_name="FreeInit Noise Reinit",
            category=CATEGORY_FREEINIT,
            description=(
                "One FreeInit re-initialisation by hand, for graphs that chain sampling passes themselves: from the "
                "previous pass's LATENT it makes a NOISE for SamplerCustomAdvanced whose sample starts at "
                "z'_T = IFFT(M * FFT(renoise(z0)) + (1 - M) * FFT(eta)), with renoise using the first pass's noise "
                "(rebuilt from its seed) and eta fresh noise from fresh_seed. Give the next SamplerCustomAdvanced "
                "the same empty latent and a full schedule (starting at the model's maximum sigma)."),
            inputs=[
                io.Model.Input("model", tooltip="The model of the previous pass (its sampling type and latent "
                                                "format decide how to re-noise)."),
                io.Latent.Input("latent", tooltip="The previous pass's result (the LATENT its sampler output)."),
                Filter.Input("filter", tooltip="The low-pass filter (3D Low-Pass Filter node)."),
                io.Int.Input("noise_seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=False,
                             tooltip="The seed of the FIRST pass's RandomNoise: the paper re-noises with that "
                                     "same noise every pass."),
                io.Int.Input("fresh_seed", default=1, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="Seed of the fresh high-frequency noise (use noise_seed + pass index to "
                                     "match the FreeInit node)."),
                io.Float.Input("renoise_sigma", default=0.0, min=0.0, max=1000.0, step=0.001,
                               tooltip=RENOISE_TOOLTIP),
            ],
            outputs=[io.Noise.Output(tooltip="NOISE for SamplerCustomAdvanced: the re-initialised start.")],
        )

    @classmethod
    def execute(cls, model, latent, filter: LowPassFilter, noise_seed: int, fresh_seed: int,
                renoise_sigma: float) -> io.NodeOutput:
        samples, _, _ = validation.freeinit_video_latent(model, latent["samples"], "previous pass's latent")
        host.resolve_renoise_sigma(model.get_model_object("model_sampling"), renoise_sigma)
        noise_seed = validation.seed(noise_seed, "noise_seed")
        fresh_seed = validation.seed(fresh_seed, "fresh_seed")
        return io.NodeOutput(ReinitialisedNoise(model, samples, latent.get("batch_index"), filter, noise_seed,
                                                fresh_seed, renoise_sigma))
