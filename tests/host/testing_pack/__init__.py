"""FADETEST_: test-only ComfyUI node pack, loaded by tests/host/harness.py next to the real pack.

Stand-ins for what has no tiny weights (the UMT5 / CLIP text encoders and the
Wan VAEs), plus a sink output node, so shipped workflows can run end to end on
tiny synthetic models. Never shipped (tests/ is in .comfyignore).
"""
import torch
from comfy_api.latest import ComfyExtension, io, ui

from .fadetest_cond import FAMILIES, make_conditioning
from .fadetest_corrupt import NODES as CORRUPT_NODES
from .fadetest_vae import FAMILY_TO_KIND, KINDS, make_tiny_vae

CATEGORY = "_fadetest"


class TextConditioning(io.ComfyNode):
    """Replaces CLIPLoader + CLIPTextEncode: random conditioning seeded from the text."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FADETEST_TextConditioning",
            display_name="FADETEST Text Conditioning",
            category=CATEGORY,
            inputs=[
                io.Combo.Input("family", options=sorted(FAMILIES), default="wan21"),
                io.String.Input("text", multiline=True, default=""),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
            ],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    def execute(cls, family, text, seed=0):
        return io.NodeOutput(make_conditioning(family, seed=seed, text=text))


class TinyVAE(io.ComfyNode):
    """Replaces VAELoader: a narrow Wan VAE built by comfy.sd.VAE (see fadetest_vae)."""

    @classmethod
    def define_schema(cls):
        options = sorted(set(KINDS) | set(FAMILY_TO_KIND))
        return io.Schema(
            node_id="FADETEST_TinyVAE",
            display_name="FADETEST Tiny Wan VAE",
            category=CATEGORY,
            inputs=[
                io.Combo.Input("kind", options=options, default="wan21"),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
            ],
            outputs=[io.Vae.Output()],
        )

    @classmethod
    def execute(cls, kind, seed=0):
        return io.NodeOutput(make_tiny_vae(FAMILY_TO_KIND.get(kind, kind), seed=seed))


def describe(value):
    """Short text summary of any node output, for the sink's UI payload."""
    if isinstance(value, torch.Tensor):
        v = value.float()
        finite = bool(torch.isfinite(v).all())
        stats = f" mean={v.mean().item():.4g} std={v.std().item():.4g}" if finite and v.numel() > 1 else ""
        return f"Tensor{tuple(value.shape)} {str(value.dtype).replace('torch.', '')} finite={finite}{stats}"
    if isinstance(value, dict) and "samples" in value:
        return "LATENT " + describe(value["samples"])
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(x) for x in list(value)[:4])
        return f"{type(value).__name__}[{len(value)}]({inner}{', ...' if len(value) > 4 else ''})"
    return f"{type(value).__name__}"


class Sink(io.ComfyNode):
    """Output node accepting anything, so test graphs have an output to execute."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FADETEST_Sink",
            display_name="FADETEST Sink",
            category=CATEGORY,
            inputs=[io.AnyType.Input("value")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(ui=ui.PreviewText(describe(value)))


class FadeTestExtension(ComfyExtension):
    async def get_node_list(self):
        return [TextConditioning, TinyVAE, Sink] + CORRUPT_NODES


async def comfy_entrypoint():
    return FadeTestExtension()
