"""FADE video editing nodes: declarations only. The runtime is in nodes/fade/ (inversion and trajectory, guide
settings, reference cache, modulated sampler), the mathematics in nodes/algo/ (ddim, sketch).

FADE: arXiv 2506.05934, official code (MIT) EternalEvan/FADE.
"""
from __future__ import annotations

import torch

from comfy_api.latest import io

from .algo import sketch
from .algo.spectral import LowPassFilter
from .architectures import FEATURE_ATTENTION, FEATURE_BLOCK, find_architecture, flow_matching_names, supported_names
from .comfy_glue import compat, sampling, validation
from .comfy_glue.capture import SketchCapture
from .fade.guide import MEMORY_FAST, MEMORY_OFFLOAD, attach, make_settings
from .fade.sampler import ModulatedKSampler, sample_modulated_ddim
from .experts.pair import validate_pair
from .fade.trajectory import Trajectory, invert
from .types import CATEGORY_EDITING, Filter, Trajectory as TrajectoryType


class DDIMInvert(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_DDIMInvert",
            display_name="DDIM Invert",
            category=CATEGORY_EDITING,
            description=(
                "Deterministic DDIM inversion (eta = 0) of a VAE-encoded source video up the given schedule, for "
                f"flow-matching models ({flow_matching_names()}) and EPS/EDM models. Outputs "
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
                io.Int.Input("refine", default=6, min=0, max=10,
                             tooltip="Fixed-point iterations per step that make the sampler's own step land back "
                                     "on the source, one extra model call each. 0 = plain DDIM inversion (the "
                                     "paper). Above 0 one round trip (one more call per step) checks the result; "
                                     "a video it leaves over 1 % off the source is also inverted plainly and "
                                     "keeps the better, so refining is never worse than 0. On the pack's tiny "
                                     "trained Wan at 20 steps (README, measured effect), pixel PSNR: refine 0 32.5 "
                                     "dB, 2 36.3, 4 48.0, 6 (the default) 54.0. 6 is for FADE edits; for an edit without "
                                     "FADE's guide use 0 (from an exact inversion the new prompt moves the object)."),
                io.Conditioning.Input("negative", optional=True,
                                      tooltip="Negative prompt for inversion guidance, needed only when cfg != 1."),
                io.Model.Input("low_noise_model", optional=True,
                               tooltip="Wan 2.2 A14B: the low-noise expert (then 'model' is the high-noise expert). "
                                       "Each step is inverted by the expert that samples it in the Wan Expert Pair "
                                       "Guider; leave unconnected for one-model video models."),
                io.Float.Input("boundary", default=0.875, min=0.0, max=1.0, step=0.001, optional=True,
                               tooltip="With low_noise_model: the sigma where the experts switch, the same value as "
                                       "on the Wan Expert Pair Guider (Wan 2.2: 0.875 text-to-video, 0.900 "
                                       "image-to-video). Ignored without low_noise_model."),
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
    def execute(cls, model, conditioning, latent, sigmas, cfg: float, refine: int, negative=None,
                low_noise_model=None, boundary: float = 0.875) -> io.NodeOutput:
        validation.fade_video_latent(latent["samples"])   # before fix_empty_latent_channels makes 4-D 5-D
        samples = compat.fix_empty_latent_channels(model, latent["samples"])
        validation.latent_matches_model(model, samples)
        validation.descending_to_zero(sigmas)
        validation.schedule_matches_model(model, sigmas)
        if torch.count_nonzero(samples) == 0:
            raise ValueError("the latent is empty (all zeros); connect the VAE-encoded source video (VAEEncode)")
        if abs(cfg - 1.0) > 1e-6 and negative is None:
            raise ValueError(f"cfg is {cfg}; guidance needs a negative prompt: connect 'negative' or set cfg to 1")
        sampling.parameterisation(model.get_model_object("model_sampling"))   # a supported sampling type
        if low_noise_model is not None:
            validate_pair(model, low_noise_model)
        noise, trajectory = invert(model, conditioning, samples, sigmas, cfg, refine, negative, low_noise_model,
                                   boundary)
        return io.NodeOutput(noise, trajectory)


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
                io.Model.Input("model", tooltip=f"The video model ({supported_names()})."),
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
        SketchCapture(arch, sketch_blocks, feature).check_model(diffusion_model)
        validation.trajectory_matches_model(model, trajectory.latent_format)
        if sampling.parameterisation(model.get_model_object("model_sampling")) != trajectory.parameterisation:
            raise ValueError("the trajectory was inverted with a model of another sampling type; invert with the "
                             "model you edit with")
        if normalisation == sketch.NORMALISE_CFG_RELATIVE and ratio_min > ratio_max:
            raise ValueError(f"ratio_min ({ratio_min}) is above ratio_max ({ratio_max})")
        settings = make_settings(trajectory=trajectory, source_conditioning=source_conditioning, lpf=filter,
                                 sketch_blocks=int(sketch_blocks), strength=float(strength),
                                 guided_fraction=float(guided_fraction), feature=feature, spectrum=spectrum,
                                 normalisation=normalisation, ratio_min=float(ratio_min), ratio_max=float(ratio_max),
                                 memory=memory)
        return io.NodeOutput(attach(model, settings))


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
