"""Sketch-feature capture: the first K blocks of a video DiT for one conditioning, with early exit.

Used by FADE's guide for both sides of its energy (the current latent, with autograd, and the source trajectory).
The per-architecture knowledge (block list, feature module, token layout) comes from architectures.py.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

import comfy.patcher_extension
import comfy.samplers

from . import gradient_pass
from .wrappers import PACK_KEY
from ..algo.sketch import tokens_to_grid
from ..architectures import Architecture


class _SketchComplete(Exception):
    """Raised after the last sketch feature is captured, so the rest of the network never runs."""


class SketchCapture:
    """Runs the first K blocks of a video DiT for one conditioning and returns their features as
    [B, D, T, H, W] grids (early exit: nothing after block K-1's feature runs).

    Features come from torch forward hooks installed by an APPLY_MODEL wrapper for the duration of one call and
    removed in `finally`, so nothing stays attached to the shared model.
    """

    def __init__(self, arch: Architecture, sketch_blocks: int, feature: str, early_exit: bool = True):
        self.arch = arch
        self.sketch_blocks = int(sketch_blocks)
        self.feature = feature
        self.early_exit = early_exit   # False runs the whole network (what a direct port costs; benchmarks)
        self.layout = arch.feature_layout(feature)
        self.blocks_run: List[int] = []   # blocks whose features the last call produced (one capture per run)

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
        arch, k_last, feature, early_exit = self.arch, self.sketch_blocks - 1, self.feature, self.early_exit
        run_log = self.blocks_run

        def apply_model_wrapper(executor, *args, **kwargs):
            blocks = arch.block_list(executor.class_obj.diffusion_model)
            handles = []
            for index in range(k_last + 1):
                def hook(module, inputs, output, index=index):
                    store[index] = arch.take(output).clone()   # clone: later blocks may update it in place
                    run_log.append(index)
                    if index == k_last and early_exit:
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
