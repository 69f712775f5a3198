"""FreeInit nodes: declarations only. The runtime is in nodes/freeinit/ (pass loop, re-noising), the mathematics
in nodes/algo/freeinit.py.

FreeInit: arXiv 2312.07537, official code (MIT) TianxingWu/FreeInit.
"""
from __future__ import annotations

import logging
from typing import Optional

import comfy.patcher_extension
from comfy_api.latest import io

from .algo import freeinit as core
from .algo.spectral import DEFAULT_FILTER, LowPassFilter
from .architectures import flow_matching_names, supported_families
from .comfy_glue import validation, wrappers
from .freeinit.passes import FreeInitSampling, FreeInitSettings
from .freeinit.renoise import ReinitialisedNoise, resolve_renoise_sigma
from .types import CATEGORY_FREEINIT, Filter

log = logging.getLogger("FADE")

RENOISE_TOOLTIP = (
    "Noise level sigma_T the previous result is re-noised to before its low band is kept. 0 = automatic, the "
    "paper's setting: the model's training sigma at t=999 for EPS/v-prediction models (14.61 for SD1.5, i.e. "
    f"{core.signal_fraction(core.SD_SIGMA_AT_T999, core.VARIANCE_EXPLODING):.3f} of the signal survives); for "
    f"flow-matching models ({flow_matching_names()}), where sigma=1 keeps nothing, the "
    f"sigma with the same signal-to-noise ratio, {core.FLOW_SNR_MATCHED_SIGMA:.4f} (keeps "
    f"{core.signal_fraction(core.FLOW_SNR_MATCHED_SIGMA, core.FLOW):.3f} of the signal); for EDM models (Cosmos 1.0) "
    f"{core.VE_SNR_MATCHED_SIGMA:.2f}. Lower values keep more of the previous pass.")



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
                f"latents ({supported_families()}) and 4-D frame batches (AnimateDiff), for flow-matching and "
                "EPS models."),
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
        resolve_renoise_sigma(model.get_model_object("model_sampling"), renoise_sigma)   # type and range, up front
        settings = FreeInitSettings(int(passes), filter or DEFAULT_FILTER, float(renoise_sigma), bool(coarse_to_fine))
        patched = model.clone()
        # Stacking: a second FreeInit replaces the first (on the clone only) instead of multiplying the passes.
        if wrappers.replace_pack_wrapper(patched, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE,
                                         FreeInitSampling(settings)):
            log.info("FreeInit: this MODEL already had FreeInit attached; the new settings replace it")
        return io.NodeOutput(patched)


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
        resolve_renoise_sigma(model.get_model_object("model_sampling"), renoise_sigma)
        noise_seed = validation.seed(noise_seed, "noise_seed")
        fresh_seed = validation.seed(fresh_seed, "fresh_seed")
        return io.NodeOutput(ReinitialisedNoise(model, samples, latent.get("batch_index"), filter, noise_seed,
                                                fresh_seed, renoise_sigma))
