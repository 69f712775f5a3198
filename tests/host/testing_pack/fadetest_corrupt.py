"""Test-only nodes that make the bad inputs a careless graph can produce (NaN / Inf tensors, a wrong channel
count, a 4-D frame batch) and a pass-through that always re-executes, for tests/host/test_guard_rails.py."""
import itertools

import torch
from comfy_api.latest import io

CATEGORY = "_fadetest"
LATENT_MODES = ["nan", "inf", "channels", "frame_batch"]
_counter = itertools.count()


def corrupt_tensor(t, mode):
    t = t.clone()
    if mode == "nan":
        t.view(-1)[0] = float("nan")
    elif mode == "inf":
        t.view(-1)[-1] = float("inf")
    return t


class CorruptLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FADETEST_CorruptLatent", display_name="FADETEST Corrupt Latent", category=CATEGORY,
            inputs=[io.Latent.Input("latent"), io.Combo.Input("mode", options=LATENT_MODES, default="nan")],
            outputs=[io.Latent.Output()])

    @classmethod
    def execute(cls, latent, mode):
        s = latent["samples"]
        if mode == "channels":        # half the channels, non-zero so fix_empty_latent_channels leaves it
            s = torch.randn(s.shape[:1] + (max(1, s.shape[1] // 2),) + s.shape[2:],
                            generator=torch.Generator().manual_seed(0))
        elif mode == "frame_batch":   # [B,C,T,H,W] -> [T,C,H,W], an AnimateDiff-style batch of frames
            s = s[0].movedim(1, 0).contiguous()
        else:
            s = corrupt_tensor(s, mode)
        return io.NodeOutput(dict(latent, samples=s))


class CorruptMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FADETEST_CorruptMask", display_name="FADETEST Corrupt Mask", category=CATEGORY,
            inputs=[io.Mask.Input("mask"), io.Combo.Input("mode", options=["nan", "inf"], default="nan")],
            outputs=[io.Mask.Output()])

    @classmethod
    def execute(cls, mask, mode):
        return io.NodeOutput(corrupt_tensor(mask, mode))


class _CorruptedNoise:
    def __init__(self, inner, mode):
        self.inner, self.mode, self.seed = inner, mode, inner.seed

    def generate_noise(self, input_latent):
        return corrupt_tensor(self.inner.generate_noise(input_latent), self.mode)


class CorruptNoise(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FADETEST_CorruptNoise", display_name="FADETEST Corrupt Noise", category=CATEGORY,
            inputs=[io.Noise.Input("noise"), io.Combo.Input("mode", options=["nan", "inf"], default="nan")],
            outputs=[io.Noise.Output()])

    @classmethod
    def execute(cls, noise, mode):
        return io.NodeOutput(_CorruptedNoise(noise, mode))


class Fresh(io.ComfyNode):
    """Pass-through that is never cached, so everything downstream re-executes while upstream (the loaded
    MODEL) stays the cached object: a later run then sees whatever an earlier one left on it."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FADETEST_Fresh", display_name="FADETEST Fresh", category=CATEGORY,
            inputs=[io.AnyType.Input("value")], outputs=[io.AnyType.Output()])

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return next(_counter)

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(value)


NODES = [CorruptLatent, CorruptMask, CorruptNoise, Fresh]
