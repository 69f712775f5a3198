"""The Modulated DDIM Sampler: DDIM (eta = 0) == Euler, with FADE's frequency-aware modulation on the guided steps
when the MODEL carries a guide.

Per guided step t: the first K blocks run on the current latent with autograd (early exit after block K-1), their
low bands are compared with the source trajectory's (sketch.sketch_energy, G_t), and grad G_t is folded into the
model's x0 prediction before the Euler step (algo.ddim.euler_step).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from tqdm.auto import trange

import comfy.patcher_extension
import comfy.sampler_helpers
import comfy.samplers

from . import reference_cache
from .guide import MEMORY_OFFLOAD, GuideSettings, find_guide
from ..algo import ddim, sketch
from ..architectures import find_architecture
from ..comfy_glue import compat, gradient_pass, sampling, validation, wrappers
from ..comfy_glue.capture import SketchCapture
from ..experts.pair import schedule_segment

log = logging.getLogger("FADE")

RUN_OBSERVER_KEY = wrappers.PACK_KEY + ".run_observer"   # transformer_options entry (see observe_runs)


@dataclass
class RunReport:
    """What one guided sampling call did (logged at its end; handed to observers)."""
    energies: List[float] = field(default_factory=list)       # G_t per guided step
    modulated_steps: List[int] = field(default_factory=list)  # steps whose prediction was modulated
    blocks_run: List[int] = field(default_factory=list)       # blocks whose features the last pass produced
    references: dict = field(default_factory=lambda: {"computed": 0, "reused": 0, "refused": 0})


class RunReports:
    """Collects the RunReport of every guided run of a MODEL (observe_runs); for tests and benchmarks. Survives
    ModelPatcher.clone's deep copy of model_options as the same object."""

    def __init__(self):
        self.reports: List[RunReport] = []

    def __call__(self, report: RunReport):
        self.reports.append(report)

    def __deepcopy__(self, memo):
        return self

    @property
    def last(self) -> RunReport:
        return self.reports[-1]


def observe_runs(model):
    """(a clone of model whose guided runs are reported, the RunReports collecting them)."""
    observed = model.clone()
    reports = RunReports()
    observed.model_options.setdefault("transformer_options", {})[RUN_OBSERVER_KEY] = reports
    return observed, reports


class GuideRun:
    """Per-run state of the modulation inside one sampling call (created and dropped by sample_modulated_ddim)."""

    def __init__(self, settings: GuideSettings, model_k, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict,
                 cache: Optional[reference_cache.ReferenceCache] = None):
        self.settings = settings
        self.cache = cache if cache is not None else reference_cache.REFERENCE_CACHE
        self.cache.sweep()   # once per run: drop entries of models ComfyUI has unloaded since
        guider = model_k.inner_model
        self.patcher = guider.model_patcher
        self.base_model = guider.inner_model
        self.model_options = extra_args.get("model_options", {})
        segment = schedule_segment(self.model_options)
        self.offset, self.total_steps = schedule_position(segment, sigmas)
        trajectory = settings.trajectory
        validation.finite(x, "latent being sampled")
        trajectory.check_schedule(sigmas, segment.offset if segment is not None else None)
        trajectory.check_latent(x.shape)
        diffusion_model = self.base_model.diffusion_model
        self.arch = find_architecture(diffusion_model)
        self.capture = SketchCapture(self.arch, settings.sketch_blocks, settings.feature)
        self.capture.check_model(diffusion_model)
        self.grid = self.arch.token_grid(diffusion_model, x.shape)
        with torch.inference_mode(False):   # autograd saves the band's tensors; they must not be inference tensors
            band = sketch.band_selection(settings.lpf, self.grid, settings.spectrum, x.device)
            self.band = sketch.BandSelection(band.index.clone(), band.gain.clone(), band.weight.clone(), band.numel)
        self.guided_steps = sketch.guided_step_count(self.total_steps, settings.guided_fraction)
        self.source_cond = self._process_source_conditioning(x, extra_args)
        # Only the modules the gradient pass runs: blocks >= K keep their (possibly memory-mapped) weights.
        unused_blocks = self.arch.block_list(diffusion_model)[settings.sketch_blocks:]
        gradient_pass.deinference_parameters(diffusion_model, skip=unused_blocks)
        self.report = RunReport()

    def _process_source_conditioning(self, x, extra_args):
        conds = {"positive": comfy.sampler_helpers.convert_cond(self.settings.source_conditioning)}
        conds = compat.process_conds(self.base_model, x, conds, x.device, seed=extra_args.get("seed"),
                                     latent_shapes=getattr(self.base_model, "latent_shapes", None))
        return conds["positive"]

    def is_guided(self, step: int) -> bool:
        """step: of the whole schedule (offset + the sampling call's own step)."""
        return self.settings.strength > 0.0 and step < self.guided_steps

    def features(self, latent, sigma, for_gradient):
        """Sketch features of `latent` at `sigma` for the source prompt, [B, D, T, H, W] per block."""
        return self.capture.features(self.base_model, self.source_cond, latent, sigma, self.model_options, self.grid,
                                     for_gradient=for_gradient)

    def reference(self, step: int, sigma: torch.Tensor, x: torch.Tensor) -> List[torch.Tensor]:
        """The source trajectory's low bands at `step`, from the reference cache or computed now."""
        def compute():
            source = self.settings.trajectory.at_step(step, x.device, x.dtype)
            with torch.no_grad():
                # for_gradient: the same (SDPA) attention as the gradient pass, so that equal latents give equal
                # features even where sage / flash attention would otherwise run here.
                features = self.features(source, sigma, for_gradient=True)
                return [sketch.low_band(f, self.band, self.settings.spectrum) for f in features], features[0].dtype
        key = reference_cache.make_key(self.settings, self.patcher, self.model_options, step, float(sigma[0]), x)
        bands, status = self.cache.compute(key, self.base_model, self.settings.trajectory, compute, x.device)
        self.report.references[status] += 1
        return bands

    def gradient(self, step: int, x: torch.Tensor, sigma: torch.Tensor) -> Optional[torch.Tensor]:
        """grad_x G_t at the current latent (float32, x's shape), or None where G_t is zero to the features'
        precision (sketch.is_zero_energy; e.g. step 0, which starts on the trajectory): nothing to modulate."""
        references = self.reference(step, sigma, x)
        sampling.throw_if_interrupted()
        offload = self.settings.memory == MEMORY_OFFLOAD
        with gradient_pass.differentiable_model_code(clone_saved=self.arch.saves_inplace and not offload):
            activations = (gradient_pass.offload_saved_activations(self.base_model.diffusion_model,
                                                                   self.arch.saves_inplace)
                           if offload else contextlib.nullcontext())
            with activations:
                z = x.detach().clone().requires_grad_(True)
                features = self.features(z, sigma.clone(), for_gradient=True)
                energy = sketch.sketch_energy(features, references, [self.band] * len(features),
                                              self.settings.spectrum)
                self.report.energies.append(float(energy.detach()))
                self.report.blocks_run = list(self.capture.blocks_run)
                scale = sketch.reference_energy(references, [self.band] * len(references))
                if sketch.is_zero_energy(energy.detach(), scale, features[0].dtype):
                    return None   # nothing to follow (and no backward pass)
                sampling.throw_if_interrupted()
                (grad,) = torch.autograd.grad(energy, z)
        self.report.modulated_steps.append(step)
        return grad.detach()

    def modulate(self, x: torch.Tensor, denoised: torch.Tensor, grad: torch.Tensor, sigma: torch.Tensor,
                 cfg_term: Optional[torch.Tensor]) -> torch.Tensor:
        """Fold the guidance into the x0 prediction: the Euler velocity d = (x - D) / sigma gains +s*g', so the
        step (dt < 0) moves the latent along -g'."""
        g = self.settings
        if g.normalisation == sketch.NORMALISE_UNIT:
            velocity = g.strength * sketch.unit_direction(grad)
        else:
            # The CFG term as a velocity; without guidance (cfg 1) the whole predicted velocity stands in for it.
            reference = cfg_term / sigma if cfg_term is not None else (x - denoised) / sigma
            velocity = sketch.cfg_relative(grad, reference, g.strength, g.ratio_min, g.ratio_max)
        return denoised - velocity.to(denoised.dtype) * sigma

    def finish(self):
        r = self.report
        log.info("FADE: %d guided steps (%d modulated), G_t %s; source features computed %d, reused %d%s",
                 len(r.energies), len(r.modulated_steps),
                 f"{r.energies[0]:.3g} -> {r.energies[-1]:.3g}" if r.energies else "-",
                 r.references["computed"] + r.references["refused"], r.references["reused"],
                 f", not cached {r.references['refused']}" if r.references["refused"] else "")
        observer = self.model_options.get("transformer_options", {}).get(RUN_OBSERVER_KEY)
        if observer is not None:
            observer(r)


def schedule_position(segment, sigmas: torch.Tensor):
    """(first step, step count) of the whole schedule this sampling call is part of: from the expert-pair guider's
    ScheduleSegment, else (None) the call's own schedule."""
    if segment is None:
        return 0, len(sigmas) - 1
    return segment.offset, segment.steps


def _with_cfg_capture(extra_args: dict, captured: dict) -> dict:
    """extra_args whose model call also records the CFG term in x0 units. ComfyUI's CFG is
    uncond + (cond - uncond) * scale in x0, so the velocity (x - D) / sigma gains (uncond - cond) * scale / sigma:
    the term is stored in that (velocity-side) sign, as (uncond - cond) * scale."""
    options = comfy.patcher_extension.copy_nested_dicts(extra_args.get("model_options", {}))

    def record(args):
        cond, uncond = args["cond_denoised"], args["uncond_denoised"]
        if uncond is not None and args.get("uncond") is not None:
            captured["cfg_term"] = (uncond - cond) * args["cond_scale"]
        return args["denoised"]

    options["sampler_post_cfg_function"] = list(options.get("sampler_post_cfg_function", [])) + [record]
    return dict(extra_args, model_options=options)


def sample_modulated_ddim(model, x, sigmas, extra_args=None, callback=None, disable=None, mask=None,
                          blend_fraction=0.7, **kwargs):   # **kwargs: sampler options newer hosts may add
    """DDIM (eta = 0) == Euler (ddim.euler_step), with FADE's modulation when the MODEL carries a guide. Without a
    guide and without a mask this performs exactly the operations of ComfyUI's 'ddim'/'euler' sampler."""
    extra_args = {} if extra_args is None else extra_args
    settings = find_guide(extra_args.get("model_options"))
    run = GuideRun(settings, model, x, sigmas, extra_args) if settings is not None else None
    offset, total_steps = schedule_position(schedule_segment(extra_args.get("model_options")), sigmas)
    pinned = extra_args.get("denoise_mask")   # 0 where the latent is pinned (image-to-video start frames)
    keep = None
    blend_steps = 0
    if mask is not None:
        if settings is None:
            raise ValueError("the Modulated DDIM Sampler's mask blends toward the source trajectory; sample a MODEL "
                             "from the Sketch-Block Spectrum Guide, or disconnect the mask")
        grid = tuple(x.shape[-3:])
        keep = sketch.mask_to_latent_grid(mask.to(x.device), grid).to(x.dtype)[None, None]
        blend_steps = int(round(total_steps * blend_fraction))
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        sampling.throw_if_interrupted()
        sigma = sigmas[i]
        step = offset + i
        grad = run.gradient(step, x, sigma * s_in) if run is not None and run.is_guided(step) else None
        if grad is not None and pinned is not None:
            grad = grad * pinned.to(grad.dtype)   # pinned frames stay exactly what the sampler pins them to
        if grad is not None:
            captured: dict = {}
            call_args = (_with_cfg_capture(extra_args, captured)
                         if settings.normalisation != sketch.NORMALISE_UNIT else extra_args)
            denoised = run.modulate(x, model(x, sigma * s_in, **call_args), grad, sigma, captured.get("cfg_term"))
        else:
            denoised = model(x, sigma * s_in, **extra_args)
        if callback is not None:
            callback({'x': x, 'i': i, 'sigma': sigmas[i], 'sigma_hat': sigma, 'denoised': denoised})
        x = ddim.euler_step(x, denoised, sigma, sigmas[i + 1])
        if keep is not None and step < blend_steps:
            source = settings.trajectory.at_step(step + 1, x.device, x.dtype)
            x = sketch.blend_toward_source(x, source, keep)
    if run is not None:
        run.finish()
    return x


class ModulatedKSampler(comfy.samplers.KSAMPLER):
    """Marks the sampler as one that applies the guide (see guide.GuideAttachment)."""
    applies_fade_guide = True
