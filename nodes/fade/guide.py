"""The Sketch-Block Spectrum Guide's settings, and how they ride on a cloned MODEL to the sampler."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch

import comfy.patcher_extension

from .trajectory import Trajectory
from ..algo.spectral import LowPassFilter
from ..comfy_glue import gradient_pass, wrappers

log = logging.getLogger("FADE")

MEMORY_FAST = "fast"
MEMORY_OFFLOAD = "offload activations"


def conditioning_fingerprint(conditioning) -> Tuple:
    """A content key for a CONDITIONING list (tensors by shape, dtype and two sums; other values by repr), so
    that the reference cache tells two source prompts apart without holding on to them."""
    def describe(value):
        if isinstance(value, torch.Tensor):
            v = value.detach().to(torch.float64)
            return ("tensor", tuple(value.shape), str(value.dtype), round(float(v.sum()), 6),
                    round(float(v.abs().sum()), 6))
        if isinstance(value, dict):
            return tuple(sorted((str(k), describe(v)) for k, v in value.items()))
        if isinstance(value, (list, tuple)):
            return tuple(describe(v) for v in value)
        if isinstance(value, (int, float, str, bool, type(None))):
            return value
        return (type(value).__name__, id(value))   # opaque objects (hooks, control): by identity
    return describe(conditioning)


@dataclass(frozen=True, eq=False)
class GuideSettings:
    """What one Sketch-Block Spectrum Guide node made: immutable; nothing of a run is stored here."""

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
    source_key: Tuple = field(default=(), repr=False)   # conditioning_fingerprint(source_conditioning)

    def reference_settings(self) -> Tuple:
        """The settings the source side of G_t depends on (the reference cache key's guide part): not strength,
        normalisation, guided_fraction or memory."""
        return (self.trajectory.uid, self.source_key, self.lpf, self.sketch_blocks, self.feature, self.spectrum)


def make_settings(**values) -> GuideSettings:
    return GuideSettings(source_key=conditioning_fingerprint(values["source_conditioning"]), **values)


class GuideAttachment:
    """SAMPLER_SAMPLE wrapper that carries the guide on the patched MODEL and warns when a sampler that cannot
    apply it is used."""

    def __init__(self, settings: GuideSettings):
        self.settings = settings

    def __call__(self, executor, *args, **kwargs):
        if not getattr(executor.class_obj, "applies_fade_guide", False):
            log.warning("FADE: this MODEL carries a Sketch-Block Spectrum Guide, but the sampler in use cannot apply "
                        "it, so the edit runs unguided. Use the Modulated DDIM Sampler in SamplerCustomAdvanced.")
        return executor(*args, **kwargs)


def attach(model, settings: GuideSettings):
    """A clone of `model` that carries the guide (the input MODEL is unchanged). The clone is ComfyUI's
    non-dynamic one where dynamic VRAM is on (gradient_pass.patcher_for_gradients)."""
    patched = gradient_pass.patcher_for_gradients(model)
    # Stacking: a second guide replaces the first (on the clone); find_guide would otherwise keep finding the
    # first one and silently ignore this one.
    if wrappers.replace_pack_wrapper(patched, comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE,
                                     GuideAttachment(settings)):
        log.info("FADE: this MODEL already carried a Sketch-Block Spectrum Guide; the new guide replaces it")
    return patched


def find_guide(model_options: Optional[dict]) -> Optional[GuideSettings]:
    """The guide carried by a sampling call's model_options, or None."""
    attachment = wrappers.find_pack_wrapper(model_options, comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE,
                                            GuideAttachment)
    return attachment.settings if attachment is not None else None
