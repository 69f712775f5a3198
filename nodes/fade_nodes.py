"""FADE video editing: DDIM Invert, Sketch-Block Spectrum Guide and the Modulated DDIM Sampler.

FADE: arXiv 2506.05934, official code (MIT) EternalEvan/FADE; the mathematics is re-derived in algo/.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from tqdm.auto import trange

import comfy.k_diffusion.sampling
import comfy.model_management
import comfy.patcher_extension
import comfy.sampler_helpers
import comfy.samplers
import comfy.utils
import latent_preview
from comfy_api.latest import io

from . import compat, gradient_pass, host, validation
from .algo import ddim, sketch
from .algo.spectral import LowPassFilter
from .architectures import FEATURE_ATTENTION, FEATURE_BLOCK, find_architecture
from .types import CATEGORY_EDITING, Filter, Trajectory as TrajectoryType

log = logging.getLogger("FADE")

REFERENCE_CACHE_BYTES = 8 << 30   # source low bands kept between runs, per guide, at most this much
# Storage dtype of the source bands by the dtype of the features they come from (default float32). bfloat16
# rounding (relative rms ~2e-3) is below a bfloat16 model's own zero-energy threshold, not a float16 or float32
# one's; float16 would also risk overflow at the spectrum's DC bins.
REFERENCE_STORAGE = {torch.bfloat16: torch.bfloat16}
MEMORY_FAST = "fast"
MEMORY_OFFLOAD = "offload activations"


# ----------------------------------------------------------------------------------------------- trajectory
def latent_fingerprint(samples: torch.Tensor) -> Tuple:
    s = samples.detach().to(torch.float64)
    return (tuple(samples.shape), round(float(s.sum()), 6), round(float(s.abs().sum()), 6))


@dataclass
class Trajectory:
    """The DDIM-inverted source (the FADE_TRAJECTORY value).

    latents[j] is the source at ascending sigma j (latents[0] the clean source, latents[-1] the inverted start),
    in MODEL space, on ComfyUI's intermediate device. `sigmas` is the descending schedule it was inverted with.
    """

    latents: List[torch.Tensor]
    sigmas: torch.Tensor
    parameterisation: str
    source_fingerprint: Tuple
    refine: int
    cfg: float
    latent_format: str = ""     # the inverting model's latent format (validation.trajectory_matches_model)

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.latents[0].shape)

    def at_step(self, step: int, device, dtype) -> torch.Tensor:
        """The source latent at sigmas[step] of the descending schedule."""
        return self.latents[len(self.latents) - 1 - step].to(device, dtype)

    def check_schedule(self, sigmas: torch.Tensor):
        mine = self.sigmas
        theirs = sigmas.detach().to("cpu", torch.float32)
        if mine.shape != theirs.shape or not torch.allclose(mine, theirs, rtol=1e-5, atol=1e-6):
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

    def __init__(self, refine: int, store_device):
        self.refine = int(refine)
        self.store_device = store_device
        self.latents: List[torch.Tensor] = []

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False, *args, **kwargs):   # *args / **kwargs: what newer hosts add, unused here
        kind = host.parameterisation(model_wrap.inner_model.model_sampling)
        x = latent_image
        self.latents = [x.detach().to(self.store_device)]
        calls_per_step = 1 + self.refine            # progress counts model calls, refinements included
        total = (len(sigmas) - 1) * calls_per_step

        def denoise(q, sigma):
            return model_wrap(q, sigma, **extra_args)

        for i in trange(len(sigmas) - 1, disable=disable_pbar):
            x = ddim.inversion_step(x, float(sigmas[i]), float(sigmas[i + 1]), denoise, kind, self.refine,
                                    host.throw_if_interrupted)
            self.latents.append(x.detach().to(self.store_device))
            if callback is not None:
                callback((i + 1) * calls_per_step - 1, x, x, total)
        return x


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
        latent_in = host.latent_to_model_space(self.model, samples.to(torch.float32))
        return host.noise_for_start(top, model_sampling, float(self.trajectory.sigmas[0]), latent_in)


class DDIMInvert(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_DDIMInvert",
            display_name="DDIM Invert",
            category=CATEGORY_EDITING,
            description=(
                "Deterministic DDIM inversion (eta = 0) of a VAE-encoded source video up the given schedule, for "
                "flow-matching models (Wan, HunyuanVideo, LTXV, Mochi, Cosmos Predict2) and EPS/EDM models. Outputs "
                "a NOISE that makes SamplerCustomAdvanced start exactly at the inverted latent (with the same LATENT "
                "and SIGMAS) and the whole trajectory for the Sketch-Block Spectrum Guide."),
            inputs=[
                io.Model.Input("model", tooltip="The video model the edit will sample with."),
                io.Conditioning.Input("conditioning",
                                      tooltip="The inversion prompt. FADE inverts with an empty prompt (encode \"\")."),
                io.Latent.Input("latent", tooltip="The source video, VAE-encoded (VAEEncode)."),
                io.Sigmas.Input("sigmas", tooltip="The schedule the edit will use (same SIGMAS into "
                                                  "SamplerCustomAdvanced), descending and ending at 0."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=30.0, step=0.1,
                               tooltip="Guidance during inversion. 1 (no guidance) inverts most faithfully; the "
                                       "official code uses 6 with an empty prompt, which is the same thing. Values "
                                       "other than 1 need the negative input."),
                io.Int.Input("refine", default=0, min=0, max=10,
                             tooltip="Fixed-point iterations per step that make the sampler's own step land back "
                                     "on the source. 0 = plain DDIM inversion (the paper), first-order round-trip "
                                     "error of a few percent at 50 steps; 2-4 make the round trip nearly exact, at "
                                     "one extra model call per iteration."),
                io.Conditioning.Input("negative", optional=True,
                                      tooltip="Negative prompt for inversion guidance, needed only when cfg != 1."),
            ],
            outputs=[
                io.Noise.Output(display_name="noise",
                                tooltip="NOISE for SamplerCustomAdvanced: starts sampling at the inverted latent."),
                TrajectoryType.Output(display_name="trajectory",
                                      tooltip="The inverted latent at every sigma (model space), for the "
                                              "Sketch-Block Spectrum Guide."),
            ],
        )

    @classmethod
    def execute(cls, model, conditioning, latent, sigmas, cfg: float, refine: int, negative=None) -> io.NodeOutput:
        validation.fade_video_latent(latent["samples"])   # before fix_empty_latent_channels makes 4-D 5-D
        samples = compat.fix_empty_latent_channels(model, latent["samples"])
        validation.latent_matches_model(model, samples)
        validation.descending_to_zero(sigmas)
        validation.schedule_matches_model(model, sigmas)
        if torch.count_nonzero(samples) == 0:
            raise ValueError("the latent is empty (all zeros); connect the VAE-encoded source video (VAEEncode)")
        model_sampling = model.get_model_object("model_sampling")
        kind = host.parameterisation(model_sampling)
        if abs(cfg - 1.0) > 1e-6 and negative is None:
            raise ValueError(f"cfg is {cfg}; guidance needs a negative prompt: connect 'negative' or set cfg to 1")

        guider = comfy.samplers.CFGGuider(model)
        conds = {"positive": conditioning}
        if negative is not None:
            conds["negative"] = negative
        guider.inner_set_conds(conds)
        guider.set_cfg(cfg)
        store = comfy.model_management.intermediate_device()
        sampler = InversionSampler(refine, store)
        ascending = ddim.ascending(sigmas)
        total_calls = (sigmas.numel() - 1) * (1 + int(refine))
        callback = latent_preview.prepare_callback(model, total_calls)
        disable_pbar = not comfy.utils.PROGRESS_BAR_ENABLED
        guider.sample(torch.zeros_like(samples), samples, sampler, ascending, callback=callback,
                      disable_pbar=disable_pbar, seed=0)
        trajectory = Trajectory(latents=sampler.latents, sigmas=sigmas.detach().to("cpu", torch.float32).clone(),
                                parameterisation=kind, source_fingerprint=latent_fingerprint(samples),
                                refine=int(refine), cfg=float(cfg),
                                latent_format=validation.latent_format_name(model))
        return io.NodeOutput(TrajectoryNoise(trajectory, model), trajectory)


# ----------------------------------------------------------------------------------------------- the guide
@dataclass
class SketchGuide:
    """Settings of one Sketch-Block Spectrum Guide plus its cache of source low bands (the source side of G_t
    depends only on these settings, so re-running the edit with another target prompt reuses it)."""

    trajectory: Trajectory
    source_conditioning: list
    lpf: LowPassFilter
    sketch_blocks: int
    strength: float
    guided_fraction: float
    feature: str
    spectrum: str
    normalisation: str
    ratio_min: float
    ratio_max: float
    memory: str = MEMORY_FAST
    reference_cache: Dict[Tuple, List[torch.Tensor]] = field(default_factory=dict, repr=False)
    cache_bytes: int = 0
    last_run_energies: List[float] = field(default_factory=list)   # G_t per guided step of the last run
    last_run_blocks: List[int] = field(default_factory=list)       # blocks whose features the last pass produced

    def reference(self, key, compute, device) -> List[torch.Tensor]:
        """The source low bands for `key`: from the cache, else computed and cached (while under the budget).

        compute() returns (bands, the features' dtype). Bands are kept as (real, imaginary) pairs in pinned CPU
        memory, copied without blocking, in bfloat16 for bfloat16 features and float32 otherwise (REFERENCE_STORAGE):
        the rounding then stays below the zero-energy threshold of sketch.is_zero_energy, so a step on the source
        trajectory has G_t below it. The first run uses the same stored values as later runs, so a re-run with the
        same settings reproduces it exactly.
        """
        stored = self.reference_cache.get(key)
        if stored is None:
            bands, feature_dtype = compute()
            storage = REFERENCE_STORAGE.get(feature_dtype, torch.float32)
            stored = [_compact(band, storage) for band in bands]
            size = sum(b.numel() * b.element_size() for b in stored)
            if self.cache_bytes + size <= REFERENCE_CACHE_BYTES:
                self.reference_cache[key] = stored
                self.cache_bytes += size
        return [torch.view_as_complex(b.to(device, non_blocking=True).float()) for b in stored]


def _compact(band: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    offload = comfy.model_management.intermediate_device()
    pinned = torch.cuda.is_available() and band.device.type == "cuda" and torch.device(offload).type == "cpu"
    real = torch.view_as_real(band).to(dtype)
    out = torch.empty(real.shape, dtype=real.dtype, device=offload, pin_memory=pinned)
    out.copy_(real, non_blocking=pinned)
    return out


class GuideAttachment:
    """SAMPLER_SAMPLE wrapper that carries the guide on the patched MODEL and warns when a sampler that cannot
    apply it is used."""

    def __init__(self, guide: SketchGuide):
        self.guide = guide

    def __call__(self, executor, *args, **kwargs):
        if not getattr(executor.class_obj, "applies_fade_guide", False):
            log.warning("FADE: this MODEL carries a Sketch-Block Spectrum Guide, but the sampler in use cannot apply "
                        "it, so the edit runs unguided. Use the Modulated DDIM Sampler in SamplerCustomAdvanced.")
        return executor(*args, **kwargs)


def find_guide(model_options: Optional[dict]) -> Optional[SketchGuide]:
    wrappers = comfy.patcher_extension.get_wrappers_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE,
                                                              host.PACK_KEY, model_options or {},
                                                              is_model_options=True)
    for wrapper in wrappers:
        if isinstance(wrapper, GuideAttachment):
            return wrapper.guide
    return None


class SketchSpectrumGuide(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_SketchSpectrumGuide",
            display_name="Sketch-Block Spectrum Guide",
            category=CATEGORY_EDITING,
            description=(
                "FADE's frequency-aware modulation: during the first part of sampling, pushes the latent so that the "
                "low-frequency spectrum of the first K ('sketching') blocks' features matches the source video's "
                "inversion trajectory, which keeps layout and motion while the prompt changes the content. Returns "
                "the MODEL carrying the guide; sample it with the Modulated DDIM Sampler. On a MODEL that already "
                "carries a guide, this guide replaces it."),
            inputs=[
                io.Model.Input("model", tooltip="The video model (Wan 2.1/2.2, HunyuanVideo, LTX-Video, Mochi, "
                                                "Cosmos 1.0 / Predict2)."),
                TrajectoryType.Input("trajectory", tooltip="DDIM Invert's trajectory of the source video."),
                io.Conditioning.Input("source_conditioning",
                                      tooltip="The prompt describing the SOURCE video: both sketch passes (current "
                                              "latent and trajectory) use it, as in the paper."),
                Filter.Input("filter", tooltip="Which feature frequencies are matched. Official code: box, d_s = 0.67 "
                                               "(keeps 2/3 per spatial axis), d_t = 1, with spectrum 2d."),
                io.Int.Input("sketch_blocks", default=4, min=1, max=64,
                             tooltip="K: how many leading transformer blocks are the 'sketching' blocks (paper and "
                                     "official code: 4). The gradient pass runs only these blocks."),
                io.Float.Input("strength", default=1.0, min=0.0, max=10000.0, step=0.01,
                               tooltip="unit: the step along -grad G / rms(grad G), as a velocity per unit of sigma "
                                       "(1 = about the size of the model's own update). cfg-relative: the multiplier "
                                       "on grad G before the ratio clamp (official: 5000). 0 = off (plain DDIM)."),
                io.Float.Input("guided_fraction", default=0.6, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the steps, from the start, that are guided (paper and official "
                                       "code: 0.6, i.e. 30 of 50). Later steps cost nothing extra."),
                io.Combo.Input("feature", options=[FEATURE_ATTENTION, FEATURE_BLOCK], default=FEATURE_ATTENTION,
                               tooltip="attention: each block's self-attention output on the video tokens (the "
                                       "official code). block: the block's output (the paper's description)."),
                io.Combo.Input("spectrum", options=[sketch.SPECTRUM_2D, sketch.SPECTRUM_3D],
                               default=sketch.SPECTRUM_2D,
                               tooltip="2d: DFT over (h, w) per latent frame (the official code). 3d: over "
                                       "(t, h, w), as the paper describes; then d_t also matters."),
                io.Combo.Input("normalisation", options=[sketch.NORMALISE_UNIT, sketch.NORMALISE_CFG_RELATIVE],
                               default=sketch.NORMALISE_UNIT,
                               tooltip="unit: -strength * g / rms(g) (the paper's normalised step). cfg-relative: "
                                       "strength * g rescaled so |g| / |CFG term| lies in [ratio_min, ratio_max], "
                                       "added to the prediction (the official code)."),
                io.Float.Input("ratio_min", default=0.33, min=0.0, max=100.0, step=0.01,
                               tooltip="cfg-relative only: smallest |guidance| / |CFG term| (official 0.33)."),
                io.Float.Input("ratio_max", default=3.0, min=0.0, max=100.0, step=0.01,
                               tooltip="cfg-relative only: largest |guidance| / |CFG term| (official 3.0)."),
                io.Combo.Input("memory", options=[MEMORY_FAST, MEMORY_OFFLOAD], default=MEMORY_FAST, optional=True,
                               tooltip="fast: keep the gradient pass's activations on the GPU. offload activations: "
                                       "keep them in CPU memory (slower, much less VRAM for long or large videos)."),
            ],
            outputs=[io.Model.Output(tooltip="The model, cloned, carrying the guide (the input is unchanged).")],
        )

    @classmethod
    def execute(cls, model, trajectory: Trajectory, source_conditioning, filter: LowPassFilter, sketch_blocks: int,
                strength: float, guided_fraction: float, feature: str, spectrum: str, normalisation: str,
                ratio_min: float, ratio_max: float, memory: str = MEMORY_FAST) -> io.NodeOutput:
        if not isinstance(trajectory, Trajectory):
            raise ValueError("connect DDIM Invert's trajectory output")
        validation.fade_video_latent(trajectory.latents[0], "trajectory's source latent")
        diffusion_model = model.get_model_object("diffusion_model")
        arch = find_architecture(diffusion_model)
        host.SketchCapture(arch, sketch_blocks, feature).check_model(diffusion_model)
        validation.trajectory_matches_model(model, trajectory.latent_format)
        if host.parameterisation(model.get_model_object("model_sampling")) != trajectory.parameterisation:
            raise ValueError("the trajectory was inverted with a model of another sampling type; invert with the "
                             "model you edit with")
        if normalisation == sketch.NORMALISE_CFG_RELATIVE and ratio_min > ratio_max:
            raise ValueError(f"ratio_min ({ratio_min}) is above ratio_max ({ratio_max})")
        guide = SketchGuide(trajectory=trajectory, source_conditioning=source_conditioning, lpf=filter,
                            sketch_blocks=int(sketch_blocks), strength=float(strength),
                            guided_fraction=float(guided_fraction), feature=feature, spectrum=spectrum,
                            normalisation=normalisation, ratio_min=float(ratio_min), ratio_max=float(ratio_max),
                            memory=memory)
        patched = gradient_pass.patcher_for_gradients(model)
        # Stacking: a second guide on a guided MODEL replaces the first (on the clone); find_guide would
        # otherwise keep finding the first one and silently ignore this one.
        if host.remove_pack_wrappers(patched, comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, GuideAttachment):
            log.info("FADE: this MODEL already carried a Sketch-Block Spectrum Guide; the new guide replaces it")
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, host.PACK_KEY,
                                     GuideAttachment(guide))
        return io.NodeOutput(patched)


# ----------------------------------------------------------------------------------------------- the sampler
class GuideRun:
    """Per-run state of the modulation inside one sampling call."""

    def __init__(self, guide: SketchGuide, model_k, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict):
        self.guide = guide
        guider = model_k.inner_model
        self.base_model = guider.inner_model
        self.model_options = extra_args.get("model_options", {})
        trajectory = guide.trajectory
        validation.finite(x, "latent being sampled")
        trajectory.check_schedule(sigmas)
        trajectory.check_latent(x.shape)
        diffusion_model = self.base_model.diffusion_model
        self.arch = find_architecture(diffusion_model)
        self.capture = host.SketchCapture(self.arch, guide.sketch_blocks, guide.feature)
        self.capture.check_model(diffusion_model)
        self.grid = self.arch.token_grid(diffusion_model, x.shape)
        with torch.inference_mode(False):   # autograd saves the band's tensors; they must not be inference tensors
            band = sketch.band_selection(guide.lpf, self.grid, guide.spectrum, x.device)
            self.band = sketch.BandSelection(band.index.clone(), band.gain.clone(), band.weight.clone(), band.numel)
        self.guided_steps = sketch.guided_step_count(len(sigmas) - 1, guide.guided_fraction)
        self.source_cond = self._process_source_conditioning(guider, x, extra_args)
        # Only the modules the gradient pass runs: blocks >= K keep their (possibly memory-mapped) weights.
        unused_blocks = self.arch.block_list(diffusion_model)[guide.sketch_blocks:]
        gradient_pass.deinference_parameters(diffusion_model, skip=unused_blocks)
        self.energies: List[float] = []

    def _process_source_conditioning(self, guider, x, extra_args):
        conds = {"positive": comfy.sampler_helpers.convert_cond(self.guide.source_conditioning)}
        conds = compat.process_conds(self.base_model, x, conds, x.device, seed=extra_args.get("seed"),
                                     latent_shapes=getattr(self.base_model, "latent_shapes", None))
        return conds["positive"]

    def is_guided(self, step: int) -> bool:
        return self.guide.strength > 0.0 and step < self.guided_steps

    def _features(self, latent, sigma, for_gradient):
        return self.capture.features(self.base_model, self.source_cond, latent, sigma, self.model_options, self.grid,
                                     for_gradient=for_gradient)

    def _reference(self, step: int, sigma: torch.Tensor, x: torch.Tensor) -> List[torch.Tensor]:
        def compute():
            source = self.guide.trajectory.at_step(step, x.device, x.dtype)
            with torch.no_grad():
                # for_gradient: the same (SDPA) attention as the gradient pass, so that equal latents give equal
                # features even where sage / flash attention would otherwise run here.
                features = self._features(source, sigma, for_gradient=True)
                return [sketch.low_band(f, self.band, self.guide.spectrum) for f in features], features[0].dtype
        return self.guide.reference((step, float(sigma[0]), tuple(x.shape)), compute, x.device)

    def gradient(self, step: int, x: torch.Tensor, sigma: torch.Tensor) -> Optional[torch.Tensor]:
        """grad_x G_t at the current latent (float32, x's shape), or None where G_t is zero to the features'
        precision (sketch.is_zero_energy; e.g. step 0, which starts on the trajectory): nothing to modulate."""
        references = self._reference(step, sigma, x)
        host.throw_if_interrupted()
        offload = self.guide.memory == MEMORY_OFFLOAD
        with gradient_pass.differentiable_model_code(clone_saved=self.arch.saves_inplace and not offload):
            activations = (gradient_pass.offload_saved_activations(self.base_model.diffusion_model,
                                                                   self.arch.saves_inplace)
                           if offload else contextlib.nullcontext())
            with activations:
                z = x.detach().clone().requires_grad_(True)
                features = self._features(z, sigma.clone(), for_gradient=True)
                energy = sketch.sketch_energy(features, references, [self.band] * len(features),
                                              self.guide.spectrum)
                self.energies.append(float(energy.detach()))
                scale = sketch.reference_energy(references, [self.band] * len(references))
                if sketch.is_zero_energy(energy.detach(), scale, features[0].dtype):
                    return None   # nothing to follow (and no backward pass)
                host.throw_if_interrupted()
                (grad,) = torch.autograd.grad(energy, z)
        return grad.detach()

    def modulate(self, x: torch.Tensor, denoised: torch.Tensor, grad: torch.Tensor, sigma: torch.Tensor,
                 cfg_term: Optional[torch.Tensor]) -> torch.Tensor:
        """Fold the guidance into the x0 prediction: the Euler velocity d = (x - D) / sigma gains +s*g', so the
        step (dt < 0) moves the latent along -g'."""
        g = self.guide
        if g.normalisation == sketch.NORMALISE_UNIT:
            velocity = g.strength * sketch.unit_direction(grad)
        else:
            # The CFG term as a velocity; without guidance (cfg 1) the whole predicted velocity stands in for it.
            reference = cfg_term / sigma if cfg_term is not None else (x - denoised) / sigma
            velocity = sketch.cfg_relative(grad, reference, g.strength, g.ratio_min, g.ratio_max)
        return denoised - velocity.to(denoised.dtype) * sigma


def _with_cfg_capture(extra_args: dict, captured: dict) -> dict:
    """extra_args whose model call also records the CFG term (cond - uncond) * scale, in x0 units."""
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
    """DDIM (eta = 0) == Euler, with FADE's modulation when the MODEL carries a guide. Without a guide and without
    a mask this performs exactly the operations of ComfyUI's 'ddim'/'euler' sampler."""
    extra_args = {} if extra_args is None else extra_args
    guide = find_guide(extra_args.get("model_options"))
    run = GuideRun(guide, model, x, sigmas, extra_args) if guide is not None else None
    keep = None
    blend_steps = 0
    if mask is not None:
        if guide is None:
            raise ValueError("the Modulated DDIM Sampler's mask blends toward the source trajectory; sample a MODEL "
                             "from the Sketch-Block Spectrum Guide, or disconnect the mask")
        grid = tuple(x.shape[-3:])
        keep = sketch.mask_to_latent_grid(mask.to(x.device), grid).to(x.dtype)[None, None]
        blend_steps = int(round((len(sigmas) - 1) * blend_fraction))
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        host.throw_if_interrupted()
        sigma_hat = sigmas[i]
        grad = run.gradient(i, x, sigma_hat * s_in) if run is not None and run.is_guided(i) else None
        if grad is not None:
            captured: dict = {}
            call_args = _with_cfg_capture(extra_args, captured) if guide.normalisation != sketch.NORMALISE_UNIT \
                else extra_args
            denoised = model(x, sigma_hat * s_in, **call_args)
            denoised = run.modulate(x, denoised, grad, sigma_hat, captured.get("cfg_term"))
        else:
            denoised = model(x, sigma_hat * s_in, **extra_args)
        d = comfy.k_diffusion.sampling.to_d(x, sigma_hat, denoised)
        if callback is not None:
            callback({'x': x, 'i': i, 'sigma': sigmas[i], 'sigma_hat': sigma_hat, 'denoised': denoised})
        dt = sigmas[i + 1] - sigma_hat
        x = x + d * dt
        if keep is not None and i < blend_steps:
            source = guide.trajectory.at_step(i + 1, x.device, x.dtype)
            x = sketch.blend_toward_source(x, source, keep)
    if run is not None:
        guide.last_run_energies = list(run.energies)
        guide.last_run_blocks = list(run.capture.blocks_run)
    return x


class ModulatedKSampler(comfy.samplers.KSAMPLER):
    """Marks the sampler as one that applies the guide (see GuideAttachment)."""
    applies_fade_guide = True


class ModulatedDDIMSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_ModulatedDDIMSampler",
            display_name="Modulated DDIM Sampler",
            category=CATEGORY_EDITING,
            description=(
                "A SAMPLER for SamplerCustomAdvanced: deterministic DDIM (eta = 0). On a MODEL from the Sketch-Block "
                "Spectrum Guide it applies FADE's modulation on the guided steps; on any other MODEL it is "
                "bit-identical to ComfyUI's 'ddim'. Optional local blending: outside the mask the latent is reset to "
                "the source trajectory for the first steps (the official code does this with a SAM mask)."),
            inputs=[
                io.Float.Input("blend_fraction", default=0.7, min=0.0, max=1.0, step=0.01,
                               tooltip="With a mask: fraction of the steps, from the start, after which the "
                                       "background is reset to the source (official: 35 of 50 = 0.7)."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Region to edit (white). Frames and pixels of the source video; it is mapped "
                                      "to the latent grid (frames grouped like a causal video VAE: frame 0 alone, then "
                                      "groups of 4 for Wan; max-pooled, dilated 3x3)."),
            ],
            outputs=[io.Sampler.Output(tooltip="The sampler, for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, blend_fraction: float, mask=None) -> io.NodeOutput:
        validation.finite(mask, "mask")
        options = {"blend_fraction": float(blend_fraction), "mask": mask}
        return io.NodeOutput(ModulatedKSampler(sample_modulated_ddim, extra_options=options,
                                               inpaint_options={"random": True}))
