"""Random stand-ins for text-encoder output, per tiny model family (test-only).

Pure torch, no ComfyUI import, so tests/host/tiny_models.py can load this file
directly while ComfyUI loads the same file as part of the FADETEST_ pack.
Shapes follow what ComfyUI's real encoders hand to each model (context dim,
pooled output, attention masks); values are seeded so the same text always
gives the same conditioning and different texts differ.
"""
import hashlib

import torch

# context_dim: last dim of the cross-attention context the (tiny) model expects.
# tokens: context length. valid: tokens left unmasked when the real encoder
# returns an attention mask (padded tokens are zeroed, as zero_out_masked does).
# pooled: size of "pooled_output" when the model (or its encoder) provides one.
FAMILIES = {
    "wan21": {"context_dim": 4096, "tokens": 8},             # UMT5-XXL
    "wan22_5b": {"context_dim": 4096, "tokens": 8},          # UMT5-XXL
    "hunyuan_video": {"context_dim": 4096, "tokens": 8, "pooled": 768},  # llava-llama3 + CLIP-L pooled
    "wan21_i2v": {"context_dim": 4096, "tokens": 8},         # image-to-video: the same text encoders
    "wan22_i2v": {"context_dim": 4096, "tokens": 8},
    "hunyuan_video_i2v": {"context_dim": 4096, "tokens": 8, "pooled": 768},
    "hunyuan_video15": {"context_dim": 3584, "tokens": 8, "pooled": 3584},   # Qwen2.5-VL 7B (pooled unused)
    # T5-XXL through mochi_te, so masked; LTXVModel.forward requires attention_mask.
    "ltxv": {"context_dim": 4096, "tokens": 12, "valid": 8},
    # Real Mochi uses T5-XXL (4096); the tiny Mochi is built with t5_feat_dim=256
    # because AsymmDiTJoint's caption AttentionPool is t5_feat_dim^2 sized (50M params at 4096).
    "mochi": {"context_dim": 256, "tokens": 12, "valid": 8},
    "cosmos1": {"context_dim": 1024, "tokens": 12, "valid": 8},   # old T5-XXL 1.1 (1024)
    "cosmos_predict2": {"context_dim": 1024, "tokens": 8},
    "sd15": {"context_dim": 768, "tokens": 77, "pooled": 768},    # CLIP-L
}


def text_seed(text, seed=0):
    """Stable 63-bit seed from (seed, text); Python's hash() is salted per process."""
    digest = hashlib.sha256(f"{int(seed)}\x00{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_conditioning(family, seed=0, text="", batch=1, tokens=None):
    """ComfyUI CONDITIONING: [[cross_attn (B, L, D), {extras}]]."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    spec = FAMILIES[family]
    n = int(tokens or spec["tokens"])
    gen = torch.Generator().manual_seed(text_seed(text, seed))
    cond = torch.randn((batch, n, spec["context_dim"]), generator=gen)
    extras = {}
    if "valid" in spec:
        valid = min(spec["valid"], n)
        mask = torch.zeros((batch, n), dtype=torch.long)
        mask[:, :valid] = 1
        cond[:, valid:] = 0.0
        extras["attention_mask"] = mask
    if "pooled" in spec:
        extras["pooled_output"] = torch.randn((batch, spec["pooled"]), generator=gen)
    return [[cond, extras]]
