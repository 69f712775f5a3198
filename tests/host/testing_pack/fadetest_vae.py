"""Narrow Wan VAEs built through ComfyUI's own comfy.sd.VAE constructor (test-only).

comfy.sd.VAE recognises a Wan VAE by key names but hard-codes its widths
(comfy/sd.py: ddconfig dim=96 for 2.1, dim=160 for 2.2), so VAELoader cannot load
a tiny synthetic Wan VAE: the full-size 2.1 VAE alone is 127M parameters. Here the
WanVAE class that comfy/sd.py looks up is swapped, for the duration of one
constructor call, for a narrow one (same z_dim, dim_mult and temporal
downsampling, so same strides and latent layout); everything else (ratios,
process_input/output, dtype, ModelPatcher, tiling) is ComfyUI's own code.
"""
import contextlib
import threading

import torch

# dim / dec_dim are the only widths changed; strides come from dim_mult and
# temperal_downsample, which stay as ComfyUI passes them.
KINDS = {
    "wan21": {"module": "comfy.ldm.wan.vae", "narrow": {"dim": 8, "num_res_blocks": 1}},
    "wan22": {"module": "comfy.ldm.wan.vae2_2", "narrow": {"dim": 8, "dec_dim": 16, "num_res_blocks": 1}},
}
# Family names of fadetest_cond / tiny_models mapped to a VAE kind.
FAMILY_TO_KIND = {"wan21": "wan21", "wan22_5b": "wan22"}

_swap_lock = threading.Lock()


def _vae_module(kind):
    import importlib
    return importlib.import_module(KINDS[kind]["module"])


@contextlib.contextmanager
def _narrow_wan_class(kind):
    mod = _vae_module(kind)
    orig = mod.WanVAE
    narrow = KINDS[kind]["narrow"]

    class NarrowWanVAE(orig):
        def __init__(self, **kw):
            kw.update(narrow)
            super().__init__(**kw)

    with _swap_lock:
        mod.WanVAE = NarrowWanVAE
        try:
            yield NarrowWanVAE
        finally:
            mod.WanVAE = orig


def _init_like(key, shape, gen):
    """Deterministic init that keeps a random conv stack numerically tame."""
    if key.endswith("gamma"):                      # RMS_norm scale
        return torch.ones(shape)
    if key.endswith("bias") or key.endswith("beta"):
        return torch.zeros(shape)
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    return torch.randn(shape, generator=gen) / max(fan_in, 1) ** 0.5


def tiny_vae_state_dict(kind, seed=0):
    """Random weights for the narrow Wan VAE, with the key names comfy.sd.VAE detects."""
    with _narrow_wan_class(kind) as cls:
        # Same ddconfig comfy/sd.py passes (z_dim, dim_mult, temporal downsampling).
        z_dim = 16 if kind == "wan21" else 48
        model = cls(z_dim=z_dim, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                    temperal_downsample=[False, True, True], dropout=0.0)
    gen = torch.Generator().manual_seed(int(seed))
    return {k: _init_like(k, tuple(v.shape), gen) for k, v in model.state_dict().items()}


def make_tiny_vae(kind, seed=0):
    """A comfy.sd.VAE for 'wan21' (16 ch, x8, t/4) or 'wan22' (48 ch, x16, t/4)."""
    import comfy.sd
    if kind not in KINDS:
        raise ValueError(f"unknown VAE kind {kind!r}; known: {sorted(KINDS)}")
    sd = tiny_vae_state_dict(kind, seed)
    with _narrow_wan_class(kind):
        vae = comfy.sd.VAE(sd=sd)
    expected = 16 if kind == "wan21" else 48
    if vae.first_stage_model is None or vae.latent_channels != expected:
        raise RuntimeError(f"comfy.sd.VAE did not detect the tiny {kind} VAE (latent_channels={vae.latent_channels})")
    return vae
