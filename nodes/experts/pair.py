"""The expert-pair GUIDER: one SamplerCustomAdvanced run over a high-noise and a low-noise expert (Wan 2.2 A14B).

The schedule the sampler receives is split where its step sigmas cross the boundary (algo.experts.split_step),
so any step count works. Each part is sampled by ComfyUI's own CFGGuider with that expert, exactly as the stock
two-KSamplerAdvanced graph does (the second part starts from the first part's latent with no noise added), so
model management loads one expert at a time and every sampler, preview and interrupt works as usual.

FreeInit attached to either expert (FADE_FreeInit) runs around the whole high -> low pipeline: every pass samples
both parts and the next pass is re-initialised from the low expert's clean result. FADE's guide attached to either
expert applies to the whole schedule: each step's sketch features come from the expert that samples that step,
and every sampling call is told which part of the whole schedule it is (ScheduleSegment).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import torch

import comfy.patcher_extension
import comfy.samplers

from ..algo import experts
from ..comfy_glue import progress, sampling, validation, wrappers
from ..freeinit import passes

log = logging.getLogger("FADE")

BOUNDARY_T2V = 0.875   # Wan 2.2 A14B text-to-video (shift 12 in the official code)
BOUNDARY_I2V = 0.900   # Wan 2.2 A14B image-to-video (shift 5)
SEGMENT_KEY = "fade_freeinit_segment"   # model_options entry: the ScheduleSegment a sampling call samples


@dataclass(frozen=True)
class ScheduleSegment:
    """Which part of a whole schedule one sampling call samples: its steps are offset .. offset + n - 1 of
    `steps`, sampled by `expert` (algo.experts.HIGH / LOW)."""
    offset: int
    steps: int
    expert: str
    boundary: float


def schedule_segment(model_options: Optional[dict]) -> Optional[ScheduleSegment]:
    """The ScheduleSegment of a sampling call's model_options (None outside the expert-pair guider)."""
    return (model_options or {}).get(SEGMENT_KEY)


def _freeinit_of(patcher) -> Optional[passes.FreeInitSampling]:
    return wrappers.find_patcher_wrapper(patcher, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE,
                                         passes.FreeInitSampling)


def pair_freeinit(high, low) -> Optional[passes.FreeInitSettings]:
    """FreeInit settings attached to either expert (the same settings when both carry it), or None."""
    found = [(name, w.settings) for name, w in (("high-noise", _freeinit_of(high)), ("low-noise", _freeinit_of(low)))
             if w is not None]
    if len(found) == 2 and found[0][1] != found[1][1]:
        raise ValueError("both experts carry FreeInit, with different settings; attach FreeInit to one expert "
                         "(it runs over both), or give both FreeInit nodes the same settings")
    return found[0][1] if found else None


def validate_pair(high, low):
    """Both experts must sample in the same latent space and sigma space."""
    for what, patcher in (("high_noise_model", high), ("low_noise_model", low)):
        if not hasattr(patcher, "get_model_object"):
            raise ValueError(f"{what} is not a MODEL; connect a diffusion model (UNETLoader -> ModelSamplingSD3)")
    high_format, low_format = validation.latent_format_name(high), validation.latent_format_name(low)
    if high_format != low_format:
        raise ValueError(f"the experts use different latent formats (high-noise {high_format}, low-noise "
                         f"{low_format}); connect the two experts of one model (e.g. Wan 2.2 A14B high_noise and "
                         "low_noise files)")
    kinds = [sampling.parameterisation(p.get_model_object("model_sampling")) for p in (high, low)]
    if kinds[0] != kinds[1]:
        raise ValueError("the experts use different sampling types; connect the two experts of one model")


class ExpertPairGuider:
    """GUIDER (SamplerCustomAdvanced's `guider`) over two experts; see the module doc.

    model_patcher is the high-noise expert: SamplerCustomAdvanced reads the latent format and previews from it
    (both experts share them, validate_pair).
    """

    def __init__(self, high, low, positive, negative, high_cfg: float, low_cfg: float, boundary: float):
        validate_pair(high, low)
        self.high, self.low = high, low
        self.model_patcher = high
        self.model_options = high.model_options
        self.positive, self.negative = positive, negative
        self.cfg = {experts.HIGH: float(high_cfg), experts.LOW: float(low_cfg)}
        self.boundary = float(boundary)
        self.freeinit = pair_freeinit(high, low)

    def _expert_patchers(self) -> dict:
        """Per expert, a clone the segments sample with: without FreeInit (the pair runs the passes itself)."""
        out = {}
        for name, patcher in ((experts.HIGH, self.high), (experts.LOW, self.low)):
            clone = patcher.clone()
            wrappers.remove_pack_wrappers(clone, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE,
                                          passes.FreeInitSampling)
            out[name] = clone
        share_guide(out, self.boundary)
        return out

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None, *args, **kwargs):
        if sigmas.shape[-1] == 0:
            return latent_image
        validation.schedule_matches_model(self.high, sigmas)
        patchers = self._expert_patchers()

        def sample_pass(pass_noise, pass_sigmas, pass_callback):
            return self._pipeline(patchers, pass_noise, latent_image, sampler, pass_sigmas, denoise_mask,
                                  pass_callback, disable_pbar, seed)

        if self.freeinit is not None and self.freeinit.passes > 1:
            # The re-initialisation starts from the LOW expert's clean result, in its latent space.
            return passes.run_passes(self.freeinit, self.low, noise, latent_image, sigmas, seed, callback,
                                     sample_pass, denoise_mask)
        return sample_pass(noise, sigmas, callback)

    def _pipeline(self, patchers, noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar,
                  seed):
        """High expert on the steps starting at sigma >= boundary, then the low expert on the rest."""
        steps = int(sigmas.shape[-1]) - 1
        split = experts.split_step(sigmas, self.boundary)
        parts = [(experts.HIGH, sigmas[:split + 1], 0), (experts.LOW, sigmas[split:], split)]
        out, part_noise, part_latent = latent_image, noise, latent_image
        for name, part_sigmas, offset in parts:
            if part_sigmas.shape[-1] < 2:
                continue
            sampling.throw_if_interrupted()
            segment = ScheduleSegment(offset, steps, name, self.boundary)
            guider = comfy.samplers.CFGGuider(patchers[name])
            guider.model_options = dict(guider.model_options, **{SEGMENT_KEY: segment})
            guider.set_conds(self.positive, self.negative)
            guider.set_cfg(self.cfg[name])
            out = guider.sample(part_noise, part_latent, sampler, part_sigmas, denoise_mask,
                                progress.offset_callback(callback, offset, steps), disable_pbar, seed)
            # As KSamplerAdvanced with add_noise off: the next part starts at this latent (which the sampler
            # returned divided by its noise scaling), with zero noise.
            part_noise, part_latent = torch.zeros_like(out), out
        return out


def share_guide(patchers: dict, boundary: float):
    """A Sketch-Block Spectrum Guide on one expert guides both: the other expert's clone gets the same guide
    (each step's features then come from the expert sampling it). Guides on both experts must follow one
    trajectory, and a trajectory inverted with an expert pair must have been split at the same boundary."""
    from ..fade import guide as fade_guide   # lazy: only FADE edits need the guide's runtime
    sampler_sample = comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE
    found = {name: wrappers.find_patcher_wrapper(p, sampler_sample, fade_guide.GuideAttachment)
             for name, p in patchers.items()}
    guides = {name: a.settings for name, a in found.items() if a is not None}
    if not guides:
        return
    trajectories = {id(g.trajectory) for g in guides.values()}
    if len(trajectories) > 1:
        raise ValueError("the two experts carry Sketch-Block Spectrum Guides with different trajectories; guide "
                         "one expert (it guides both), or connect the same DDIM Invert trajectory to both guides")
    settings = next(iter(guides.values()))
    inverted_at = getattr(settings.trajectory, "boundary", None)
    if inverted_at is not None and abs(float(inverted_at) - boundary) > 1e-6:
        raise ValueError(f"the trajectory was inverted with the experts split at boundary {inverted_at:g}, but this "
                         f"guider switches at {boundary:g}; set the same boundary on DDIM Invert and the Wan Expert "
                         "Pair Guider")
    if inverted_at is None:
        log.warning("FADE: the trajectory was inverted with one model; for an expert-pair edit connect the "
                    "low-noise model to DDIM Invert too, so each step is inverted by the expert that samples it")
    for name in patchers:
        if name not in guides:
            patchers[name] = fade_guide.attach(patchers[name], settings)
