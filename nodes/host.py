"""Glue between the pure-torch core and ComfyUI: sampling parameterisation, noise units and sketch-feature capture
with early exit. Autograd inside a node is in gradient_pass.py, host-version differences in compat.py."""
from __future__ import annotations

import logging
import math
from typing import List, Sequence, Tuple

import torch

import comfy.model_management
import comfy.model_sampling
import comfy.patcher_extension
import comfy.samplers

from . import gradient_pass
from .algo import freeinit as core_freeinit
from .algo.sketch import tokens_to_grid
from .architectures import Architecture

log = logging.getLogger("FADE")

PACK_KEY = "fade_freeinit"


# ----------------------------------------------------------------------------------------------- sampling types
def parameterisation(model_sampling) -> str:
    """FLOW for rectified-flow models, VARIANCE_EXPLODING for the x = x0 + sigma*eps spaces; else a ValueError."""
    if isinstance(model_sampling, comfy.model_sampling.CONST):
        return core_freeinit.FLOW
    if isinstance(model_sampling, (comfy.model_sampling.EPS, comfy.model_sampling.COSMOS_RFLOW)):
        return core_freeinit.VARIANCE_EXPLODING
    raise ValueError(f"unknown sampling type {type(model_sampling).__name__}: FreeInit and FADE support "
                     "flow-matching (CONST) models and EPS / v-prediction / EDM / Cosmos models")


def default_renoise_sigma(model_sampling) -> float:
    """The paper's re-noise level (see algo.freeinit): training sigma at t = 999 for discrete EPS/V models,
    the SD-SNR-matched sigma otherwise."""
    kind = parameterisation(model_sampling)
    if kind == core_freeinit.FLOW:
        return core_freeinit.FLOW_SNR_MATCHED_SIGMA
    if isinstance(model_sampling, comfy.model_sampling.ModelSamplingDiscrete) and not isinstance(
            model_sampling, comfy.model_sampling.ModelSamplingDiscreteEDM):
        return float(model_sampling.sigma(torch.tensor(999.0)))
    return core_freeinit.VE_SNR_MATCHED_SIGMA


def resolve_renoise_sigma(model_sampling, requested: float) -> float:
    """0 = automatic; otherwise validated against the model's sigma range."""
    kind = parameterisation(model_sampling)
    if requested <= 0.0:
        return default_renoise_sigma(model_sampling)
    if kind == core_freeinit.FLOW and requested > 1.0:
        raise ValueError(f"renoise_sigma {requested} is above 1, the flow-matching maximum; use a value in (0, 1] "
                         f"(0 = automatic, {core_freeinit.FLOW_SNR_MATCHED_SIGMA:.4f} for this model)")
    return float(requested)


def max_denoise(model_sampling, first_sigma: float) -> bool:
    """The same test ComfyUI's samplers use to decide whether the start is pure noise."""
    top = float(model_sampling.sigma_max)
    return math.isclose(top, first_sigma, rel_tol=1e-05) or first_sigma > top


def noise_for_start(target: torch.Tensor, model_sampling, first_sigma: float,
                    latent_in_model_space: torch.Tensor) -> torch.Tensor:
    """The NOISE tensor that makes a ComfyUI sampler start exactly at `target`.

    Samplers start at noise_scaling(sigma_0, noise, latent, max_denoise), which is affine in noise; invert it.
    """
    md = max_denoise(model_sampling, first_sigma)
    sigma = torch.tensor([first_sigma], dtype=torch.float64)
    ones = torch.ones((1,) * target.ndim, dtype=torch.float64)
    latent = latent_in_model_space.to(torch.float64)
    scale = model_sampling.noise_scaling(sigma, ones, torch.zeros_like(ones), md)
    offset = model_sampling.noise_scaling(sigma, torch.zeros_like(latent), latent, md)
    return ((target.to(torch.float64) - offset) / scale).to(target.dtype)


def latent_to_model_space(model_patcher, samples: torch.Tensor) -> torch.Tensor:
    """VAE-space LATENT samples -> the model space samplers work in (CFGGuider skips all-zero latents too)."""
    if torch.count_nonzero(samples) == 0:
        return samples
    return model_patcher.model.process_latent_in(samples)


def remove_pack_wrappers(patcher, wrapper_type: str, cls) -> bool:
    """Drop this pack's wrappers of class `cls` from `patcher` (a fresh clone: clone() copies the wrapper lists,
    so the input MODEL keeps its own). Returns whether there were any. Rebuilds the list rather than calling
    remove_wrappers_with_key so that other wrappers under the pack key stay."""
    by_key = patcher.wrappers.get(wrapper_type, {})
    current = by_key.get(PACK_KEY, [])
    kept = [w for w in current if not isinstance(w, cls)]
    if len(kept) == len(current):
        return False
    if kept:
        by_key[PACK_KEY] = kept
    else:
        by_key.pop(PACK_KEY, None)
    return True


def throw_if_interrupted():
    comfy.model_management.throw_exception_if_processing_interrupted()


# ----------------------------------------------------------------------------------------------- sketch capture
class _SketchComplete(Exception):
    """Raised after the last sketch feature is captured, so the rest of the network never runs."""


class SketchCapture:
    """Runs the first K blocks of a video DiT for one conditioning and returns their features as
    [B, D, T, H, W] grids (early exit: nothing after block K-1's feature runs).

    Features come from torch forward hooks installed by an APPLY_MODEL wrapper for the duration of one call and
    removed in `finally`, so nothing stays attached to the shared model.
    """

    def __init__(self, arch: Architecture, sketch_blocks: int, feature: str):
        self.arch = arch
        self.sketch_blocks = int(sketch_blocks)
        self.feature = feature
        self.layout = arch.feature_layout(feature)
        self.blocks_run: List[int] = []   # which blocks' features were produced in the last call (for tests)

    def check_model(self, diffusion_model):
        blocks = self.arch.block_list(diffusion_model)
        if self.sketch_blocks > len(blocks):
            raise ValueError(f"sketch_blocks is {self.sketch_blocks} but this {self.arch.name} model has only "
                             f"{len(blocks)} blocks; lower sketch_blocks to at most {len(blocks)}")
        for block in blocks[:self.sketch_blocks]:
            self.arch.feature_module(block, self.feature)

    def _model_options(self, base_options: dict, store: dict, for_gradient: bool) -> dict:
        options = comfy.patcher_extension.copy_nested_dicts(base_options) if base_options else {}
        transformer_options = options.setdefault("transformer_options", {})
        if for_gradient:
            transformer_options["optimized_attention_override"] = gradient_pass.sdpa_attention
        arch, k_last, feature = self.arch, self.sketch_blocks - 1, self.feature
        run_log = self.blocks_run

        def apply_model_wrapper(executor, *args, **kwargs):
            blocks = arch.block_list(executor.class_obj.diffusion_model)
            handles = []
            for index in range(k_last + 1):
                def hook(module, inputs, output, index=index):
                    store[index] = arch.take(output).clone()   # clone: later blocks may update it in place
                    run_log.append(index)
                    if index == k_last:
                        raise _SketchComplete()
                handles.append(arch.feature_module(blocks[index], feature).register_forward_hook(hook))
            try:
                return executor(*args, **kwargs)
            finally:
                for handle in handles:
                    handle.remove()

        comfy.patcher_extension.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, PACK_KEY,
                                                     apply_model_wrapper, options, is_model_options=True)
        return options

    def features(self, base_model, processed_cond: Sequence[dict], x: torch.Tensor, sigma: torch.Tensor,
                 model_options: dict, grid: Tuple[int, int, int], for_gradient: bool = False) -> List[torch.Tensor]:
        """Sketch features of x at sigma, [B, D, T, H, W] each, for blocks 0..K-1, video tokens only."""
        store: dict = {}
        self.blocks_run.clear()
        options = self._model_options(model_options, store, for_gradient)
        try:
            comfy.samplers.calc_cond_batch(base_model, [list(processed_cond)], x, sigma, options)
        except _SketchComplete:
            pass
        missing = [i for i in range(self.sketch_blocks) if i not in store]
        if missing:
            raise RuntimeError(f"the {self.arch.name} model did not run sketch blocks {missing}; is another node "
                               "replacing its blocks?")
        model_conds = processed_cond[0].get("model_conds", {}) if processed_cond else {}
        offset = self.arch.token_offset(store[0], self.layout, grid, model_conds)
        return [tokens_to_grid(store[i], grid, self.layout, offset) for i in range(self.sketch_blocks)]
