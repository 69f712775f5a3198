"""DDIM inversion of the source video: the trajectory FADE's guide follows, and the NOISE that starts the edit on
its last latent."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
from tqdm.auto import trange

import comfy.model_management
import comfy.samplers
import comfy.utils
import latent_preview

from ..algo import ddim
from ..comfy_glue import compat, progress, sampling, validation


def latent_fingerprint(samples: torch.Tensor) -> Tuple:
    s = samples.detach().to(torch.float64)
    return (tuple(samples.shape), round(float(s.sum()), 6), round(float(s.abs().sum()), 6))


@dataclass(eq=False)
class Trajectory:
    """The DDIM-inverted source (the FADE_TRAJECTORY value). Read-only once made.

    latents[j] is the source at ascending sigma j (latents[0] the clean source, latents[-1] the inverted start),
    in MODEL space, on ComfyUI's intermediate device. `sigmas` is the descending schedule it was inverted with.
    `uid` names this trajectory in the reference cache, whose entries for it are dropped when it is freed.
    """

    latents: List[torch.Tensor]
    sigmas: torch.Tensor
    parameterisation: str
    source_fingerprint: Tuple
    latent_format: str = ""     # the inverting model's latent format (validation.trajectory_matches_model)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    boundary: Optional[float] = None   # set when inverted with an expert pair split at this sigma
    report: Optional["InversionReport"] = None   # what the round-trip check measured and chose

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.latents[0].shape)

    def at_step(self, step: int, device, dtype) -> torch.Tensor:
        """The source latent at sigmas[step] of the descending schedule."""
        return self.latents[len(self.latents) - 1 - step].to(device, dtype)

    def check_schedule(self, sigmas: torch.Tensor, offset: Optional[int] = None):
        """The sampler's SIGMAS must be the inverted schedule, or, where the expert-pair guider says the call is
        one expert's part of it (offset), that part."""
        theirs = sigmas.detach().to("cpu", torch.float32)
        mine = self.sigmas if offset is None else self.sigmas[offset:offset + theirs.numel()]
        if mine.shape != theirs.shape or not torch.allclose(mine, theirs, rtol=1e-5, atol=1e-6):
            start = _find_part(self.sigmas, theirs)
            if start is not None:
                raise ValueError(f"the sampler's SIGMAS are steps {start}..{start + theirs.numel() - 1} of the "
                                 f"{self.sigmas.numel() - 1}-step schedule DDIM Invert used: a guided edit samples "
                                 "the whole schedule in one SamplerCustomAdvanced. For Wan 2.2 A14B's two experts "
                                 "use the Wan Expert Pair Guider, which gives each expert its part")
            raise ValueError(f"the sampler's SIGMAS ({theirs.numel() - 1} steps, from {float(theirs[0]):.4g}) are not "
                             f"the schedule DDIM Invert used ({mine.numel() - 1} steps, from {float(mine[0]):.4g}); "
                             "connect the same SIGMAS to DDIM Invert and to SamplerCustomAdvanced")

    def check_latent(self, shape):
        if tuple(shape) != self.shape:
            raise ValueError(f"the latent being sampled has shape {tuple(shape)} but the trajectory was inverted from "
                             f"a latent of shape {self.shape}; connect the LATENT that went into DDIM Invert")


class InversionSampler(comfy.samplers.Sampler):
    """Deterministic DDIM inversion as a ComfyUI Sampler (not a KSAMPLER: its noise scaling would divide by
    1 - sigma = 0 at the flow maximum). Receives an ascending schedule starting at 0."""

    def __init__(self, refine: int, store_device, continue_from: Optional[List[torch.Tensor]] = None):
        self.refine = int(refine)
        self.store_device = store_device
        self.continue_from = continue_from   # the trajectory so far (the previous expert's part), or None
        self.latents: List[torch.Tensor] = []

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False, *args, **kwargs):   # *args / **kwargs: what newer hosts add, unused here
        kind = sampling.parameterisation(model_wrap.inner_model.model_sampling)
        if self.continue_from:
            x = self.continue_from[-1].to(latent_image.device, latent_image.dtype)
            self.latents = list(self.continue_from)
        else:
            x = latent_image
            self.latents = [x.detach().to(self.store_device)]
        calls_per_step = 1 + self.refine            # progress counts model calls, refinements included
        total = (len(sigmas) - 1) * calls_per_step

        def denoise(q, sigma):
            return model_wrap(q, sigma, **extra_args)

        for i in trange(len(sigmas) - 1, disable=disable_pbar):
            x = ddim.inversion_step(x, float(sigmas[i]), float(sigmas[i + 1]), denoise, kind, self.refine,
                                    sampling.throw_if_interrupted)
            self.latents.append(x.detach().to(self.store_device))
            if callback is not None:
                callback((i + 1) * calls_per_step - 1, x, x, total)
        return x


class RoundTripSampler(comfy.samplers.Sampler):
    """The sampler's own Euler path down a descending part of the schedule, from `start` (model space) or, for a
    later part, from where the previous part ended: the round trip that verifies an inversion."""

    def __init__(self, start: torch.Tensor, on_step):
        self.start = start
        self.on_step = on_step
        self.result: Optional[torch.Tensor] = None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False, *args, **kwargs):
        x = self.start.to(latent_image.device, latent_image.dtype)

        def denoise(q, sigma):
            return model_wrap(q, sigma, **extra_args)

        self.result = ddim.euler_descent(x, sigmas, denoise, sampling.throw_if_interrupted, self.on_step)
        return self.result


class TrajectoryNoise:
    """NOISE that makes SamplerCustomAdvanced start exactly at the inverted latent, with the same LATENT (or an
    empty one) and the same SIGMAS."""

    def __init__(self, trajectory: Trajectory, model):
        self.seed = 0
        self.trajectory = trajectory
        self.model = model

    def generate_noise(self, input_latent):
        samples = compat.fix_empty_latent_channels(self.model, input_latent["samples"])
        validation.finite(samples, "latent being sampled")
        validation.latent_matches_model(self.model, samples, "latent being sampled")
        self.trajectory.check_latent(samples.shape)
        is_empty = torch.count_nonzero(samples) == 0
        if not is_empty and latent_fingerprint(samples) != self.trajectory.source_fingerprint:
            raise ValueError("DDIM Invert's noise belongs to a different latent than the one being sampled; connect "
                             "the LATENT that went into DDIM Invert (or an empty latent) to SamplerCustomAdvanced")
        model_sampling = self.model.get_model_object("model_sampling")
        top = self.trajectory.latents[-1].to(torch.float32)
        latent_in = sampling.latent_to_model_space(self.model, samples.to(torch.float32))
        return sampling.noise_for_start(top, model_sampling, float(self.trajectory.sigmas[0]), latent_in)


def _find_part(whole: torch.Tensor, part: torch.Tensor) -> Optional[int]:
    """The step at which `part` (2+ sigmas) runs inside the schedule `whole`, or None."""
    n = part.numel()
    for start in range(0, whole.numel() - n + 1):
        if n >= 2 and n < whole.numel() and torch.allclose(whole[start:start + n], part, rtol=1e-5, atol=1e-6):
            return start
    return None


def inversion_parts(model, ascending: torch.Tensor, low_noise_model=None, boundary: Optional[float] = None):
    """[(MODEL, ascending part)]: one model inverts everything; an expert pair inverts with the low-noise expert the
    steps whose model calls are at sigma < boundary (algo.experts: a step sigma -> sigma' calls at sigma', the start
    of the sampling step it undoes), then with the high-noise expert the rest."""
    if low_noise_model is None:
        return [(model, ascending)]
    targets = ascending[1:].detach().to("cpu", torch.float64)
    low_steps = int((targets < float(boundary)).sum())
    parts = [(low_noise_model, ascending[:low_steps + 1]), (model, ascending[low_steps:])]
    return [(m, part) for m, part in parts if part.shape[-1] >= 2]


# A refined inversion whose round trip reproduces the source within this (relative, model space) is kept without
# comparing it to plain DDIM's, which on the pack's tiny trained Wan is about 6 % at 20 steps. Only the cost
# depends on it: above it, plain DDIM is run and round-tripped too, and the better of the two is kept per item.
ROUND_TRIP_ACCEPT = 0.01


@dataclass
class InversionReport:
    """What DDIM Invert did, per batch item (also logged and shown on the node)."""
    refined_error: Optional[List[float]] = None   # round-trip relative error of the refined inversion
    plain_error: Optional[List[float]] = None     # of plain DDIM, when it was compared
    used_plain: Optional[List[bool]] = None

    def summary(self) -> str:
        if self.refined_error is None:
            return ""
        parts = []
        for i, err in enumerate(self.refined_error):
            text = f"refined {100 * err:.2f} %"
            if self.plain_error is not None:
                text += f", plain {100 * self.plain_error[i]:.2f} %" + (" -> plain kept" if self.used_plain[i] else "")
            parts.append(text)
        return "DDIM Invert round trip: " + "; ".join(parts)


class _Inverter:
    """Runs the inversion and its round-trip check through ComfyUI's CFGGuider, one expert part at a time, with one
    progress bar over every model call."""

    def __init__(self, model, conds, cfg, samples, sigmas, low_noise_model, boundary, refine):
        self.conds, self.cfg, self.samples = conds, cfg, samples
        self.parts = inversion_parts(model, ddim.ascending(sigmas), low_noise_model, boundary)
        self.store = comfy.model_management.intermediate_device()
        self.steps = sigmas.numel() - 1
        self.total = self.steps * (1 + refine) + (self.steps if refine > 0 else 0)   # grows if plain DDIM is compared
        self.preview = latent_preview.prepare_callback(model, self.total)
        self.disable_pbar = not comfy.utils.PROGRESS_BAR_ENABLED
        self.done = 0

    def _guider(self, patcher):
        guider = comfy.samplers.CFGGuider(patcher)
        guider.inner_set_conds(self.conds)
        guider.set_cfg(self.cfg)
        return guider

    def invert(self, refine: int) -> List[torch.Tensor]:
        latents = None
        for patcher, part in self.parts:
            sampler = InversionSampler(refine, self.store, continue_from=latents)
            callback = progress.offset_callback(self.preview, self.done, self.total)
            self._guider(patcher).sample(torch.zeros_like(self.samples), self.samples, sampler, part,
                                         callback=callback, disable_pbar=self.disable_pbar, seed=0)
            latents = sampler.latents
            self.done += (part.shape[-1] - 1) * (1 + refine)
        return latents

    def round_trip(self, top: torch.Tensor) -> torch.Tensor:
        """The source as the sampler rebuilds it from the inverted top, each step by the expert that inverted it."""
        x = top
        for patcher, part in reversed(self.parts):
            sampler = RoundTripSampler(x, self._count_step)
            self._guider(patcher).sample(torch.zeros_like(self.samples), self.samples, sampler, part.flip(0),
                                         disable_pbar=self.disable_pbar, seed=0)
            x = sampler.result
        return x.to(self.store)

    def _count_step(self, latent):
        if self.preview is not None:
            self.preview(self.done, latent, latent, self.total)
        self.done += 1


def invert(model, conditioning, samples: torch.Tensor, sigmas: torch.Tensor, cfg: float, refine: int,
           negative=None, low_noise_model=None, boundary: Optional[float] = None) -> Tuple[TrajectoryNoise, Trajectory]:
    """Invert `samples` (a validated, non-empty VAE-space video latent) up `sigmas` (descending, ending at 0)
    through ComfyUI's CFGGuider, with a preview and progress bar that count every model call. With
    `low_noise_model` (`model` then being the high-noise expert) each step is inverted by the expert that samples
    it in the Wan Expert Pair Guider at the same `boundary`, one expert loaded at a time.

    With refine > 0 the result is verified by one round trip down the same schedule (one call a step): an item
    whose round trip misses the source by more than ROUND_TRIP_ACCEPT is also inverted plainly (refine 0) and
    round-tripped, and keeps whichever inversion reproduces it better. So refining is never worse than plain DDIM
    inversion, the paper's method, on the sampler's own round trip."""
    conds = {"positive": conditioning}
    if negative is not None:
        conds["negative"] = negative
    refine = int(refine)
    run = _Inverter(model, conds, cfg, samples, sigmas, low_noise_model, boundary, refine)
    latents = run.invert(refine)
    report = InversionReport()
    if refine > 0:
        source = latents[0]
        refined_error = ddim.relative_error(run.round_trip(latents[-1]), source)
        report.refined_error = refined_error.tolist()
        if bool((refined_error > ROUND_TRIP_ACCEPT).any()):
            run.total += 2 * run.steps
            plain = run.invert(0)
            plain_error = ddim.relative_error(run.round_trip(plain[-1]), source)
            use_plain = plain_error < refined_error
            latents = [ddim.choose_per_item(use_plain, mine, theirs) for mine, theirs in zip(latents, plain)]
            report.plain_error, report.used_plain = plain_error.tolist(), use_plain.tolist()
        text = report.summary()
        progress.log.info(text)
        progress.send_node_text(text)
    trajectory = Trajectory(latents=latents, sigmas=sigmas.detach().to("cpu", torch.float32).clone(),
                            parameterisation=sampling.parameterisation(model.get_model_object("model_sampling")),
                            source_fingerprint=latent_fingerprint(samples),
                            latent_format=validation.latent_format_name(model),
                            boundary=float(boundary) if low_noise_model is not None else None,
                            report=report)
    return TrajectoryNoise(trajectory, model), trajectory
