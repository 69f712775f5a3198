"""ComfyUI glue for FADE's gradient pass: autograd inside a node, on every supported host.

Four things stand between ComfyUI's model code and torch.autograd.grad:
- nodes run under torch.inference_mode, so weights loaded there are inference tensors autograd cannot save
  (`deinference_parameters`);
- ComfyUI v0.8+ calls comfy-kitchen's fused kernels (torch.library custom ops without an autograd formula);
  v0.33 skips most of them while `comfy.model_management.in_training` is set (its own trainer's switch), so the
  pass sets that switch (`differentiable_model_code`), and registers a backward for the kernels a host calls
  regardless (`ensure_kernel_autograd`, e.g. Cosmos Predict2's rms_rope_split_half, or every RoPE on v0.8);
- sage / flash / int8 attention have no backward, so the pass forces PyTorch SDPA (`sdpa_attention`);
- dynamic VRAM (ModelPatcherDynamic) casts weights per call into reused buffers, so the guide runs on ComfyUI's
  non-dynamic clone (`patcher_for_gradients`).
"""
from __future__ import annotations

import contextlib
import logging
import threading
from typing import Callable, Dict, Iterable, Tuple

import torch

import comfy.model_management
from comfy.ldm.modules import attention as comfy_attention

log = logging.getLogger("FADE")


# ----------------------------------------------------------------------------------------------- weights
def deinference_parameters(module: torch.nn.Module, skip: Iterable[torch.nn.Module] = ()) -> int:
    """Replace inference-mode parameters and buffers with ordinary tensors of the same values.

    ComfyUI runs nodes (and so its loaders) under torch.inference_mode, and autograd cannot save inference
    tensors for backward. The replacement keeps values, devices, dtypes and the attributes ComfyUI sets on
    weights (e.g. `_model_dtype`); meta tensors (weights not materialised) are left alone, and so are the
    modules in `skip` (blocks the gradient pass never runs, so their possibly memory-mapped weights are not
    copied). Works under inference mode too and is idempotent; it is redone every run because a reload under
    inference mode creates inference tensors again.
    """
    skipped = set()
    for sub in skip:
        skipped.update(id(m) for m in sub.modules())
    replaced = 0
    with torch.inference_mode(False):
        for sub in module.modules():
            if id(sub) in skipped:
                continue
            for name, p in list(sub._parameters.items()):
                if p is None or p.is_meta or not (p.is_inference() or p.requires_grad):
                    continue
                data = p.clone() if p.is_inference() else p.detach()
                fresh = torch.nn.Parameter(data, requires_grad=False)
                fresh.__dict__.update(p.__dict__)
                sub._parameters[name] = fresh
                replaced += 1
            for name, b in list(sub._buffers.items()):
                if b is not None and not b.is_meta and b.is_inference():
                    sub._buffers[name] = b.clone()
                    replaced += 1
    return replaced


def patcher_for_gradients(model):
    """The MODEL patcher the guide samples with: a clone, non-dynamic when the input uses dynamic VRAM.

    ModelPatcherDynamic (the default on CUDA since ComfyUI v0.16) materialises weights per call into managed
    buffers that later layers reuse, so tensors autograd saved in the forward could be overwritten before the
    backward. ComfyUI's own answer for code that needs stable weights (hooks, torch.compile) is
    clone(disable_dynamic=True); use it too.
    """
    is_dynamic = getattr(model, "is_dynamic", None)
    if callable(is_dynamic) and is_dynamic():
        try:
            return model.clone(disable_dynamic=True)
        except RuntimeError as error:
            raise ValueError(f"this MODEL uses dynamic VRAM and ComfyUI could not make the non-dynamic copy FADE's "
                             f"gradient pass needs ({error}); load it with a stock loader (UNETLoader / "
                             "CheckpointLoaderSimple), or start ComfyUI with dynamic VRAM disabled") from error
    return model.clone()


# ----------------------------------------------------------------------------------------------- kernels
def _rope_reference(x, freqs_cis, split_half):
    # Plain-torch RoPE with comfy-kitchen's layouts: interleaved pairs (2k, 2k+1), or split halves (k, k + D/2).
    if x.ndim > 2 and freqs_cis.ndim > 2 and x.shape[2] != 1 and freqs_cis.shape[2] > x.shape[2]:
        freqs_cis = freqs_cis[:, :, :x.shape[2]]   # extra sequence frequencies, trimmed as the kernel does
    if split_half:
        pairs = x.reshape(*x.shape[:-1], 2, -1).movedim(-2, -1).unsqueeze(-2).to(freqs_cis.dtype)
    else:
        pairs = x.to(freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    out = freqs_cis[..., 0] * pairs[..., 0] + freqs_cis[..., 1] * pairs[..., 1]
    if split_half:
        out = out.movedim(-1, -2)
    return out.reshape(*x.shape).type_as(x)


def _rms_rope_reference(x, freqs_cis, scale, epsilon, split_half, rot_dim=0):
    normed = torch.nn.functional.rms_norm(x, (x.shape[-1],), weight=scale, eps=epsilon)
    if rot_dim and rot_dim != x.shape[-1]:
        rotated = _rope_reference(normed[..., :rot_dim], freqs_cis, split_half)
        return torch.cat((rotated, normed[..., rot_dim:]), dim=-1)
    return _rope_reference(normed, freqs_cis, split_half)


def _pair(single):
    return lambda q, k, freqs_cis: (single(q, freqs_cis), single(k, freqs_cis))


def _rms_pair(split_half):
    def reference(q, k, freqs_cis, q_scale, k_scale=None, epsilon=1e-6, rot_dim=0):
        k_scale = q_scale if k_scale is None else k_scale
        return (_rms_rope_reference(q, freqs_cis, q_scale, epsilon, split_half, rot_dim),
                _rms_rope_reference(k, freqs_cis, k_scale, epsilon, split_half, rot_dim))
    return reference


def _adaln_reference(norm):
    def reference(x, scale, shift, eps=1e-6):
        return norm(x, x.shape[-1:], eps=eps) * (1 + scale) + shift
    return reference


_rope1 = lambda x, f: _rope_reference(x, f, False)            # noqa: E731
_rope_half1 = lambda x, f: _rope_reference(x, f, True)        # noqa: E731

# comfy-kitchen op -> the pack's plain-torch formula of the same maths (checked against the kernel in the tests).
# Only out-of-place ops: ComfyUI's model code calls the in-place variants only at inference.
KERNEL_REFERENCES: Dict[str, Callable] = {
    "apply_rope1": _rope1,
    "apply_rope": _pair(_rope1),
    "apply_rope_split_half1": _rope_half1,
    "apply_rope_split_half": _pair(_rope_half1),
    "rms_rope1": lambda x, f, s, epsilon=1e-6: _rms_rope_reference(x, f, s, epsilon, False),
    "rms_rope": _rms_pair(False),
    "rms_rope_split_half1": lambda x, f, s, epsilon=1e-6: _rms_rope_reference(x, f, s, epsilon, True),
    "rms_rope_split_half": _rms_pair(True),
    "adaln": _adaln_reference(torch.nn.functional.layer_norm),
    "rms_adaln": _adaln_reference(torch.nn.functional.rms_norm),
}

_kernel_lock = threading.Lock()
_kernel_state: Dict[str, str] = {}    # op -> "native" | "registered" | "absent" (decided once per process)


def _probe_inputs(name: str) -> Tuple:
    """Tiny float32 arguments for op `name` (x: [B, L, heads, D] with D = 4; freqs: [B, L, 1, D/2, 2, 2])."""
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(shape, generator=gen)   # noqa: E731
    x, k = rand(1, 2, 1, 4), rand(1, 2, 1, 4)
    angle = rand(1, 2, 1, 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    freqs = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    scale = rand(4).abs() + 0.5
    if name in ("adaln", "rms_adaln"):
        return rand(1, 2, 4), rand(1, 2, 4), rand(1, 2, 4), 1e-6
    if name.startswith("rms_rope"):
        return (x, freqs, scale, 1e-6) if name.endswith("1") else (x, k, freqs, scale, scale.flip(0), 1e-6)
    return (x, freqs) if name.endswith("1") else (x, k, freqs)


def _differentiates(op, args) -> bool:
    """Whether autograd can run backward through `op` (a public-API check: try it on tiny inputs)."""
    with torch.inference_mode(False), torch.enable_grad():   # nodes run under inference mode
        leaves = [a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args]
        out = op(*leaves)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        try:
            torch.autograd.grad(sum(o.sum() for o in outs), [a for a in leaves if isinstance(a, torch.Tensor)],
                                allow_unused=True)
        except RuntimeError as error:
            if "autograd" in str(error):
                return False
            raise
    return True


def _register_reference_backward(qualified_name: str, reference: Callable):
    """Backward for a custom op: the vector-Jacobian product of the plain-torch formula at the saved inputs."""

    def setup_context(ctx, inputs, output):
        ctx.tensor_slots = [i for i, a in enumerate(inputs) if isinstance(a, torch.Tensor)]
        ctx.arguments = [None if isinstance(a, torch.Tensor) else a for a in inputs]
        ctx.save_for_backward(*[inputs[i] for i in ctx.tensor_slots])

    def backward(ctx, *grads):
        arguments = list(ctx.arguments)
        leaves = []
        for slot, saved in zip(ctx.tensor_slots, ctx.saved_tensors):
            leaf = saved.detach().requires_grad_(saved.is_floating_point())
            arguments[slot] = leaf
            leaves.append(leaf)
        with torch.enable_grad():
            out = reference(*arguments)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
        wanted = [leaf for leaf in leaves if leaf.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True)
        by_leaf = dict(zip(map(id, wanted), found))
        result = [None] * len(arguments)
        for slot, leaf in zip(ctx.tensor_slots, leaves):
            result[slot] = by_leaf.get(id(leaf))
        return tuple(result)

    torch.library.register_autograd(qualified_name, backward, setup_context=setup_context)


def ensure_kernel_autograd() -> Dict[str, str]:
    """Give every comfy-kitchen kernel in KERNEL_REFERENCES a backward if it has none. Checked once per process:
    an op that already differentiates (a comfy-kitchen that ships formulas) is left as it is. Returns the state
    per op: native, registered or absent (this comfy-kitchen has no such op, or there is no comfy-kitchen)."""
    with _kernel_lock:
        if _kernel_state:
            return dict(_kernel_state)
        try:
            import comfy_kitchen  # noqa: F401  (registers the ops)
            namespace = torch.ops.comfy_kitchen
        except Exception:
            namespace = None
        for name, reference in KERNEL_REFERENCES.items():
            op = getattr(namespace, name, None) if namespace is not None else None
            if op is None:
                _kernel_state[name] = "absent"
                continue
            try:
                if _differentiates(op, _probe_inputs(name)):
                    _kernel_state[name] = "native"
                    continue
                _register_reference_backward(f"comfy_kitchen::{name}", reference)
                _kernel_state[name] = "registered" if _differentiates(op, _probe_inputs(name)) else "failed"
            except Exception as error:   # an op with another signature: leave it; the pass reports if it is hit
                log.warning("FADE: could not give comfy_kitchen.%s a backward (%s)", name, error)
                _kernel_state[name] = "failed"
        registered = sorted(k for k, v in _kernel_state.items() if v == "registered")
        if registered:
            log.info("FADE: backward registered for comfy-kitchen kernels %s (plain-torch formulas)", registered)
        return dict(_kernel_state)


# ----------------------------------------------------------------------------------------------- the pass
def sdpa_attention(func, *args, **kwargs):
    """optimized_attention_override: PyTorch SDPA (sage / flash / int8 backends have no backward)."""
    return comfy_attention.attention_pytorch(*args, **kwargs)


@contextlib.contextmanager
def training_switch():
    """comfy.model_management.in_training = True for the duration (where the host has the switch), so model code
    takes its plain, differentiable path instead of fused inference kernels; always restored."""
    if not hasattr(comfy.model_management, "in_training"):
        yield
        return
    previous = comfy.model_management.in_training
    comfy.model_management.in_training = True
    try:
        yield
    finally:
        comfy.model_management.in_training = previous


@contextlib.contextmanager
def differentiable_model_code(clone_saved: bool):
    """Autograd inside a node: leave inference mode, enable grad, set ComfyUI's training switch, make sure the
    fused kernels a host calls regardless can be differentiated, and (for blocks that update saved tensors in
    place) clone what autograd saves."""
    ensure_kernel_autograd()
    with torch.inference_mode(False), torch.enable_grad(), training_switch():
        if clone_saved:
            with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
                yield
        else:
            yield


def offload_saved_activations(module: torch.nn.Module, clone_saved: bool):
    """saved_tensors_hooks that keep what autograd saves in (pinned) CPU memory until the backward pass, except
    the module's own parameters, which are resident anyway. The copy also shields saved tensors from later
    in-place updates; tensors already on the CPU are cloned for that when `clone_saved`."""
    keep = {p.data_ptr() for p in module.parameters() if not p.is_meta}
    pin = torch.cuda.is_available()

    def pack(tensor):
        if tensor.data_ptr() in keep:
            return (None, tensor)
        if tensor.device.type == "cpu":
            return (None, tensor.clone() if clone_saved else tensor)
        copy = torch.empty(tensor.size(), dtype=tensor.dtype, device="cpu", pin_memory=pin)
        copy.copy_(tensor, non_blocking=pin)
        return (tensor.device, copy)

    def unpack(packed):
        device, tensor = packed
        return tensor if device is None else tensor.to(device, non_blocking=pin)

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)
