"""What keeps the pack working across ComfyUI hosts (v0.3.64 .. v0.33): every callable the pack registers takes
and passes on arguments it does not know, the gradient pass runs ComfyUI's differentiable code (training switch,
comfy-kitchen kernels with a backward), and the guide never differentiates through dynamic-VRAM weights."""
import inspect

import pytest
import torch

import harness
import tiny_models as tm
from test_fade import Edit, guide, modulated

NEWEST_HOST_KWARGS = {"latent_shapes": None, "fadetest_future_option": "x"}   # latent_shapes: v0.8+


def _pack(name):
    return harness.pack_module(name)


def _run_wrapped(wrapper, class_obj, calls, result, *args, **kwargs):
    """Call `wrapper` the way ComfyUI does (a WrapperExecutor over the original function), recording every call
    that reaches the original."""
    import comfy.patcher_extension as pe

    def original(*args, **kwargs):
        calls.append((args, kwargs))
        return result(*args)
    return pe.WrapperExecutor.new_class_executor(original, class_obj, [wrapper]).execute(*args, **kwargs)


def _pack_wrappers(model, wrapper_type):
    import comfy.patcher_extension as pe
    return pe.get_wrappers_with_key(wrapper_type, _pack("nodes.comfy_glue.wrappers").PACK_KEY,
                                    {"transformer_options": {"wrappers": model.wrappers}}, is_model_options=True)


def test_freeinit_wrapper_passes_unknown_keywords_to_every_pass(models):
    import comfy.patcher_extension as pe
    import comfy.samplers
    model = models("wan21")
    latent = tm.latent("wan21", 5, 16, 16)["samples"]
    patched = harness.call_node("FADE_FreeInit", model=model, passes=3, renoise_sigma=0.0, coarse_to_fine=False)[0]
    (wrapper,) = _pack_wrappers(patched, pe.WrappersMP.OUTER_SAMPLE)
    guider = comfy.samplers.CFGGuider(patched)
    calls = []
    result = lambda noise, latent_image, *rest: latent_image + 0.1 * noise   # noqa: E731
    sigmas = torch.linspace(1.0, 0.0, 4)
    kwargs = dict(NEWEST_HOST_KWARGS, latent_shapes=[latent.shape])
    with torch.inference_mode():
        _run_wrapped(wrapper, guider, calls, result, torch.randn_like(latent), latent, None, sigmas, None, None,
                     True, 7, **kwargs)
    assert len(calls) == 3
    for args, passed in calls:
        assert passed == kwargs                       # every pass got the host's keywords, unchanged
        assert args[7] == 7                           # and the seed
    one = harness.call_node("FADE_FreeInit", model=model, passes=1, renoise_sigma=0.0, coarse_to_fine=False)[0]
    (single,) = _pack_wrappers(one, pe.WrappersMP.OUTER_SAMPLE)
    calls.clear()
    with torch.inference_mode():
        _run_wrapped(single, guider, calls, result, torch.randn_like(latent), latent, None, sigmas, None, None,
                     True, 7, **kwargs)
    assert len(calls) == 1 and calls[0][1] == kwargs


def test_progress_callback_passes_extra_arguments_on(comfy):
    seen = []
    forward = _pack("nodes.comfy_glue.progress").offset_callback(lambda *a, **k: seen.append((a, k)), 10, 30)
    forward(2, "x0", "x", 10, "extra", more=1)
    assert seen == [((12, "x0", "x", 30, "extra"), {"more": 1})]


def test_guide_attachment_passes_unknown_arguments_on(models):
    import comfy.patcher_extension as pe
    model = models("wan21")
    edit = Edit(model, "wan21", steps=3)
    guided = guide(model, edit.trajectory, edit.src)
    (attachment,) = _pack_wrappers(guided, pe.WrappersMP.SAMPLER_SAMPLE)
    calls = []

    class Sampler:
        applies_fade_guide = True
    assert _run_wrapped(attachment, Sampler(), calls, lambda *args: "sampled", 1, 2, **NEWEST_HOST_KWARGS) \
        == "sampled"
    assert calls == [((1, 2), NEWEST_HOST_KWARGS)]


def test_sampler_entry_points_accept_unknown_keywords(comfy):
    for function in (_pack("nodes.fade.trajectory").InversionSampler.sample,
                     _pack("nodes.fade.sampler").sample_modulated_ddim,
                     _pack("nodes.freeinit.passes").FreeInitSampling.__call__):
        parameters = inspect.signature(function).parameters.values()
        assert any(p.kind == p.VAR_KEYWORD for p in parameters), function.__qualname__


def test_process_conds_gets_latent_shapes_where_the_host_takes_them(models):
    import comfy.sampler_helpers
    import comfy.samplers
    compat = _pack("nodes.comfy_glue.compat")
    model = models("wan21")
    x = torch.zeros(tm.latent("wan21", 5, 16, 16)["samples"].shape)
    conds = {"positive": comfy.sampler_helpers.convert_cond(tm.conditioning("wan21", 1))}
    out = compat.process_conds(model.model, x, conds, x.device, seed=0)
    assert out["positive"][0]["model_conds"]
    takes = "latent_shapes" in inspect.signature(comfy.samplers.process_conds).parameters
    assert takes == (harness.version_tuple() >= (0, 8, 0))


# ----------------------------------------------------------------------------------------------- gradient pass
def test_training_switch_is_set_for_the_pass_and_restored_after_an_error(comfy):
    import comfy.model_management as mm
    gp = _pack("nodes.comfy_glue.gradient_pass")
    if not hasattr(mm, "in_training"):
        assert harness.version_tuple() < (0, 33, 0)
        with gp.differentiable_model_code(clone_saved=False):
            assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        return
    before = mm.in_training
    with pytest.raises(KeyError):
        with gp.differentiable_model_code(clone_saved=False):
            assert mm.in_training is True
            raise KeyError("boom")
    assert mm.in_training is before


def test_the_gradient_pass_runs_with_the_switch_and_sampling_without(models):
    import comfy.model_management as mm
    if not hasattr(mm, "in_training"):
        pytest.skip(f"ComfyUI {harness.host_version(harness.host().comfy_root)} has no in_training switch")
    model = models("wan21")
    edit = Edit(model, "wan21", steps=3)
    guided = guide(model, edit.trajectory, edit.src)
    block = guided.get_model_object("diffusion_model").blocks[0]
    seen = []
    handle = block.register_forward_pre_hook(lambda module, args: seen.append(
        (mm.in_training, torch.is_grad_enabled())))
    try:
        edit.run(guided, modulated())
    finally:
        handle.remove()
    assert (True, True) in seen                        # gradient pass: plain code, autograd on
    assert (False, False) in seen                      # ordinary model calls: fused kernels, inference
    assert all(training == grad for training, grad in seen)
    assert mm.in_training is False


def _kitchen():
    import importlib
    try:   # import_module: the package re-exports functions under the submodules' names
        adaln = importlib.import_module("comfy_kitchen.backends.eager.adaln")
        rope = importlib.import_module("comfy_kitchen.backends.eager.rope")
    except ImportError:
        pytest.skip(f"no comfy-kitchen on ComfyUI {harness.host_version(harness.host().comfy_root)} "
                    "(it calls no fused kernels)")
    return rope, adaln


@pytest.mark.parametrize("name", ["apply_rope1", "apply_rope", "apply_rope_split_half1", "apply_rope_split_half",
                                  "rms_rope1", "rms_rope", "rms_rope_split_half1", "rms_rope_split_half",
                                  "adaln", "rms_adaln"])
def test_kernels_differentiate_like_comfy_kitchens_eager_reference(comfy, name):
    rope, adaln = _kitchen()
    gp = _pack("nodes.comfy_glue.gradient_pass")
    state = gp.ensure_kernel_autograd()
    assert state[name] in ("native", "registered"), state
    op = getattr(torch.ops.comfy_kitchen, name)
    eager = getattr(rope, name, None) or getattr(adaln, name)
    # larger than the probe: 3 tokens, 2 heads, head dim 8
    gen = torch.Generator().manual_seed(3)
    if name in ("adaln", "rms_adaln"):
        args = [torch.randn(2, 3, 8, generator=gen) for _ in range(3)] + [1e-6]
    else:
        angle = torch.randn(1, 3, 1, 4, generator=gen)
        cos, sin = angle.cos(), angle.sin()
        freqs = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        q, k = torch.randn(2, 3, 2, 8, generator=gen), torch.randn(2, 3, 2, 8, generator=gen)
        scale = torch.rand(8, generator=gen) + 0.5
        pair = not name.endswith("1")
        args = [q, k, freqs] if pair else [q, freqs]
        if name.startswith("rms"):
            args += [scale, scale.flip(0), 1e-6] if pair else [scale, 1e-6]

    def value_and_grads(function):
        leaves = [a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args]
        with torch.inference_mode(False), torch.enable_grad():
            out = function(*leaves)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            weights = [torch.randn(o.shape, generator=torch.Generator().manual_seed(i)) for i, o in enumerate(outs)]
            loss = sum((o * w).sum() for o, w in zip(outs, weights))
            grads = torch.autograd.grad(loss, [a for a in leaves if isinstance(a, torch.Tensor)])
        return [o.detach() for o in outs], grads

    kernel_out, kernel_grads = value_and_grads(op)
    eager_out, eager_grads = value_and_grads(eager)
    for a, b in zip(kernel_out, eager_out):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(kernel_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------- weights
def test_deinference_keeps_attributes_skips_meta_and_unused_blocks(comfy):
    gp = _pack("nodes.comfy_glue.gradient_pass")
    with torch.inference_mode():
        used, unused = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    used.weight._model_dtype = torch.bfloat16          # ComfyUI reads such attributes on weights
    meta = torch.nn.Linear(2, 2, device="meta")
    root = torch.nn.ModuleDict({"used": used, "unused": unused, "meta": meta})
    unused_weight = unused.weight
    assert gp.deinference_parameters(root, skip=[unused]) == 2
    assert not used.weight.is_inference() and used.weight._model_dtype is torch.bfloat16
    assert unused.weight is unused_weight and unused.weight.is_inference()
    assert meta.weight.is_meta
    assert gp.deinference_parameters(root, skip=[unused]) == 0       # idempotent


def test_guide_uses_a_non_dynamic_clone_of_a_dynamic_vram_model(models):
    import comfy.model_patcher
    gp = _pack("nodes.comfy_glue.gradient_pass")
    base = models("wan21")
    requested = []

    class DynamicPatcher(comfy.model_patcher.ModelPatcher):
        """ModelPatcherDynamic as the guide sees it (on CPU ComfyUI never makes a real one)."""

        def is_dynamic(self):
            return True

        def clone(self, disable_dynamic=False, **kwargs):
            requested.append(disable_dynamic)
            if not disable_dynamic:
                raise AssertionError("a dynamic clone would be differentiated through per-call weights")
            return base.clone()

    dynamic = DynamicPatcher(base.model, base.load_device, base.offload_device)
    patched = gp.patcher_for_gradients(dynamic)
    assert requested == [True] and not getattr(patched, "is_dynamic", lambda: False)()

    class Broken(DynamicPatcher):
        def clone(self, disable_dynamic=False, **kwargs):
            raise RuntimeError("Cannot create non-dynamic delegate: cached_patcher_init is not initialized.")
    with pytest.raises(ValueError, match="dynamic VRAM"):
        gp.patcher_for_gradients(Broken(base.model, base.load_device, base.offload_device))
