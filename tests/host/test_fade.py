"""FADE inside a real ComfyUI: inversion accuracy on an analytic model, the modulated sampler against stock ddim,
the gradient against finite differences on every architecture, early exit, and errors for bad input."""
import logging

import pytest
import torch

import harness
import tiny_models as tm

FADE_VARIANTS = tm.params(["wan21", "wan22_5b", "hunyuan_video", "hunyuan_video15", "ltxv", "mochi", "cosmos1",
                           "cosmos_predict2"])


def schedule(model, steps, scheduler="simple"):
    import comfy.samplers
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()


def source_latent(name, seed=1):
    v = tm.variant(name)
    size = 2 * v.s_stride * max(v.patch[1], 2)
    return tm.latent(name, 1 + 2 * v.t_stride, size, size, seed=seed)


def invert(model, latent, sigmas, refine=0, cond=None):
    cond = cond if cond is not None else tm.conditioning(_family(model), 3)
    return harness.call_node("FADE_DDIMInvert", model=model, conditioning=cond, latent=latent, sigmas=sigmas,
                             cfg=1.0, refine=refine)


def _family(model):
    return getattr(model, "fadetest_family", "wan21")


def guide(model, trajectory, source, lpf=None, **settings):
    lpf = lpf or harness.call_node("FADE_GaussianLPF3D", filter_type="box", spatial_cutoff=0.67,
                                   temporal_cutoff=1.0, butterworth_order=4)[0]
    inputs = dict(sketch_blocks=2, strength=1.0, guided_fraction=1.0, feature="attention", spectrum="2d",
                  normalisation="unit", ratio_min=0.33, ratio_max=3.0)
    inputs.update(settings)
    return harness.call_node("FADE_SketchSpectrumGuide", model=model, trajectory=trajectory,
                             source_conditioning=source, filter=lpf, **inputs)[0]


def sample(model, noise, latent, sigmas, sampler, positive, negative=None, cfg=1.0):
    """SamplerCustomAdvanced's path: guider.sample(noise.generate_noise(latent), ...)."""
    import comfy.samplers
    guider = comfy.samplers.CFGGuider(model)
    conds = {"positive": positive}
    if negative is not None:
        conds["negative"] = negative
    guider.inner_set_conds(conds)
    guider.set_cfg(cfg)
    with torch.inference_mode():
        return guider.sample(noise.generate_noise(latent), latent["samples"], sampler, sigmas, disable_pbar=True,
                             seed=0)


def modulated(blend_fraction=0.7, mask=None):
    inputs = dict(blend_fraction=blend_fraction)
    if mask is not None:
        inputs["mask"] = mask
    return harness.call_node("FADE_ModulatedDDIMSampler", **inputs)[0]


def guide_of(model):
    """The guide settings a MODEL carries (found the way the sampler finds them)."""
    return harness.pack_module("nodes.fade.guide").find_guide({"transformer_options": {"wrappers": model.wrappers}})


def observed(model):
    """(a clone of model whose guided runs are reported, their RunReports): energies, reference-cache use."""
    return harness.pack_module("nodes.fade.sampler").observe_runs(model)


class Edit:
    """A source clip inverted with the negative prompt's conditioning, ready to edit: model, latent, sigmas,
    src / tgt / neg conditioning, and DDIM Invert's noise and trajectory."""

    def __init__(self, model, name, steps, refine=0, seed=1):
        self.model, self.latent, self.sigmas = model, source_latent(name, seed=seed), schedule(model, steps)
        self.src, self.tgt, self.neg = (tm.conditioning(name, i) for i in (1, 2, 3))
        self.noise, self.trajectory = invert(model, self.latent, self.sigmas, refine, self.neg)

    def run(self, model, sampler=None, cfg=3.0):
        return sample(model, self.noise, self.latent, self.sigmas, sampler or modulated(), self.tgt, self.neg,
                      cfg=cfg)


# ----------------------------------------------------------------------------------------------- analytic model
class AnalyticDiT(torch.nn.Module):
    """Stands in for a DiT: the exact denoiser of Gaussian data x0 ~ N(mean, std^2), expressed as the model output
    ComfyUI expects ((x - D(x)) / sigma for both CONST and EPS sampling), with sigma read from
    transformer_options as the real blocks see it."""

    def __init__(self, flow, wrapped, mean=0.3, std=0.8):
        super().__init__()
        self.flow, self.mean, self.std = flow, mean, std
        self.dtype = torch.float32
        object.__setattr__(self, "_wrapped", wrapped)   # not a submodule: only answers attribute look-ups

    def __getattr__(self, name):
        # the BaseModel reads a few attributes of the real DiT (e.g. Wan's patch_embedding for concat inputs)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_wrapped"), name)

    def forward(self, xc, t, transformer_options={}, **kwargs):
        s = transformer_options["sigmas"].reshape(-1, *([1] * (xc.ndim - 1))).to(xc.dtype)
        x = xc if self.flow else xc * (s * s + 1).sqrt()
        m, v = self.mean, self.std ** 2
        a = (1 - s) if self.flow else torch.ones_like(s)
        denoised = m + a * v / (a * a * v + s * s) * (x - a * m)
        return (x - denoised) / s


def analytic_model(flow):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete
    model = tm.build("wan21").clone()
    model.add_object_patch("diffusion_model", AnalyticDiT(flow, model.get_model_object("diffusion_model")))
    if not flow:
        model = ModelSamplingDiscrete().patch(model, "eps", False)[0]
    return model


def gaussian_denoiser(flow, mean=0.3, std=0.8):
    """AnalyticDiT's exact denoiser in float64, for references outside ComfyUI."""
    def denoise(x, s):
        a = (1 - s) if flow else 1.0
        return mean + a * std ** 2 / (a * a * std ** 2 + s * s) * (x - a * mean)
    return denoise


def official_round_trip(flow, x0, sigmas):
    """Round-trip error of the official scheme, written from diffusers' DDIMInverseScheduler.step (the next level's
    model output split at the current level; a velocity model for flow, an eps model on the VP schedule
    alphas_cumprod = 1 / (1 + sigma^2) otherwise), sampled back with Euler, in float64."""
    denoise = gaussian_denoiser(flow)
    x, s_all = x0.double(), [float(v) for v in sigmas]
    for s_next, s in zip(reversed(s_all[:-1]), reversed(s_all[1:])):     # ascending pairs (s, s_next)
        if flow:
            v = (x - denoise(x, s_next)) / s_next                  # eps - x0 at (x, s_next)
            x0_hat, eps = x - s * v, x + (1 - s) * v                 # solve x = (1-s) x0 + s eps, v = eps - x0
            x = (1 - s_next) * x0_hat + s_next * eps
        else:
            abar, abar_next = 1 / (1 + s * s), 1 / (1 + s_next * s_next)
            sample = x * abar ** 0.5
            q = sample / abar_next ** 0.5
            eps = (q - denoise(q, s_next)) / s_next
            x0_hat = (sample - (1 - abar) ** 0.5 * eps) / abar ** 0.5
            x = (abar_next ** 0.5 * x0_hat + (1 - abar_next) ** 0.5 * eps) / abar_next ** 0.5
    for s, s_next in zip(s_all[:-1], s_all[1:]):
        x = x + (s_next - s) * (x - denoise(x, s)) / s
    return float((x - x0.double()).norm() / x0.double().norm())


@pytest.mark.parametrize("flow", [True, False], ids=["flow-shift8", "eps"])
def test_inversion_round_trip_on_an_analytic_model(flow):
    import comfy.samplers
    model = analytic_model(flow)
    gen = torch.Generator().manual_seed(0)
    x0 = 0.3 + 0.8 * torch.randn(1, 16, 3, 6, 6, generator=gen)
    latent = {"samples": tm.latent_format("wan21").process_out(x0)}
    cond = tm.conditioning("wan21", 1)
    ddim = comfy.samplers.sampler_object("ddim")
    sigmas_for = lambda steps: schedule(model, steps, "simple" if flow else "normal")

    def error(steps, refine):
        sigmas = sigmas_for(steps)
        noise, _ = invert(model, latent, sigmas, refine, cond)
        out = sample(model, noise, latent, sigmas, ddim, cond)
        return float((out - latent["samples"]).norm() / latent["samples"].norm())

    e10, e50, e100 = error(10, 0), error(50, 0), error(100, 0)
    want50 = official_round_trip(flow, x0, sigmas_for(50))
    assert abs(e50 - want50) <= 0.1 * want50                    # flow 2.4 %, eps 1.6 %
    assert 1.4 < e10 / e50 < 10.0 and 1.5 < e50 / e100 < 2.5    # about 1/steps
    assert error(50, 4) <= 1e-5
    assert error(10, 4) <= 1e-3


def test_trajectory_starts_at_the_source_and_noise_starts_the_sampler_there(models):
    model = models("wan21")
    latent = source_latent("wan21")
    sigmas = schedule(model, 5)
    noise, trajectory = invert(model, latent, sigmas)
    assert len(trajectory.latents) == 6
    source = tm.latent_format("wan21").process_in(latent["samples"])
    torch.testing.assert_close(trajectory.latents[0], source)
    # flow at sigma_max = 1: the sampler's start noise_scaling(1, n, latent) is n itself
    assert torch.equal(noise.generate_noise(latent), trajectory.latents[-1])
    import comfy.model_management as mm
    assert trajectory.latents[-1].device == mm.intermediate_device()


# ----------------------------------------------------------------------------------------------- sampler
@pytest.mark.parametrize("name", ["wan21", "cosmos1"])
def test_unguided_and_zero_strength_are_bit_identical_to_stock_ddim(models, name):
    import comfy.samplers
    model = models(name)
    edit = Edit(model, name, 4, refine=1)
    stock = edit.run(model, comfy.samplers.sampler_object("ddim"))
    assert torch.equal(stock, edit.run(model))
    assert torch.equal(stock, edit.run(guide(model, edit.trajectory, edit.src, strength=0.0)))


@pytest.mark.parametrize("name", FADE_VARIANTS)
def test_guided_edit_runs_on_every_architecture(models, name):
    model = models(name)
    edit = Edit(model, name, 5)
    guided, reports = observed(guide(model, edit.trajectory, edit.src, guided_fraction=0.6, sketch_blocks=2))
    out = edit.run(guided, cfg=2.0)
    assert out.shape == edit.latent["samples"].shape and torch.isfinite(out).all()
    energies = reports.last.energies
    assert len(energies) == 3                                 # round(5 * 0.6) guided steps
    # step 0 starts on the trajectory: zero to working precision (and not modulated, see below)
    assert energies[0] < 1e-6 * min(energies[1:])
    assert reports.last.modulated_steps == [1, 2]
    assert reports.last.blocks_run == [0, 1]                  # early exit after block K - 1


@pytest.mark.parametrize("name", ["wan21", "ltxv", "cosmos1"])
@pytest.mark.parametrize("normalisation, strength", [("unit", 1.0), ("cfg-relative", 5000.0)])
def test_a_step_on_the_source_trajectory_is_not_modulated(models, name, normalisation, strength):
    """Step 0 starts at DDIM Invert's latent, so G_0 = 0 to working precision: as in the official code (which
    modulates only if the energy is not allclose to 0) the step must be the unguided one, bit for bit. With only
    step 0 guided the whole edit then equals stock ddim."""
    import comfy.samplers
    model = models(name)
    edit = Edit(model, name, 4)
    stock = edit.run(model, comfy.samplers.sampler_object("ddim"))
    guided, reports = observed(guide(model, edit.trajectory, edit.src, guided_fraction=0.25,
                                     normalisation=normalisation, strength=strength))
    assert torch.equal(edit.run(guided), stock)
    energies = reports.last.energies
    assert len(energies) == 1 and energies[0] < 1e-9
    # the next step is off the trajectory and is modulated
    two = guide(model, edit.trajectory, edit.src, guided_fraction=0.5, normalisation=normalisation,
                strength=strength)
    assert not torch.equal(edit.run(two), stock)


def test_summed_energy_falls_as_strength_rises(models):
    model = models("wan21")
    latent = source_latent("wan21", seed=5)
    sigmas = schedule(model, 8)
    src, tgt, neg = (tm.conditioning("wan21", i, text=t) for i, t in ((1, "src"), (2, "tgt"), (3, "")))
    noise, trajectory = invert(model, latent, sigmas, 1, neg)
    totals = []
    # The tiny random DiT's energy landscape is sharp (a per-element step of ~0.05 already reaches its minimum),
    # so strengths stay in the range where a normalised descent step cannot overshoot.
    for strength in (1e-3, 0.1, 0.4):
        guided, reports = observed(guide(model, trajectory, src, strength=strength, sketch_blocks=2,
                                         guided_fraction=1.0))
        sample(guided, noise, latent, sigmas, modulated(), tgt, neg, cfg=3.0)
        totals.append(sum(reports.last.energies))
    assert totals[0] > totals[1] > totals[2]


def test_cfg_relative_normalisation_runs_and_moves_the_result(models):
    model = models("wan21")
    edit = Edit(model, "wan21", 4)
    unguided = edit.run(model)
    out = edit.run(guide(model, edit.trajectory, edit.src, normalisation="cfg-relative", strength=5000.0,
                         spectrum="3d"))
    assert torch.isfinite(out).all() and not torch.equal(out, unguided)


def test_mask_blends_the_background_toward_the_source(models):
    """A partial mask: outside it (background) the edit ends exactly on the source, inside it the edit happens."""
    sketch = harness.pack_module("nodes.algo.sketch")
    model = models("wan21")
    edit = Edit(model, "wan21", 4)
    source = edit.latent["samples"]
    frames, height, width = 9, 32, 32                           # the pixel clip behind the [1, 16, 3, 4, 4] latent
    mask = torch.zeros(frames, height, width)
    mask[:, :, :6] = 1.0                                        # edit the left strip only
    keep = sketch.mask_to_latent_grid(mask, tuple(source.shape[-3:]))
    assert 0.0 < float(keep.mean()) < 1.0                       # really partial on the latent grid
    inside, outside = keep[None, None].expand_as(source) > 0.5, keep[None, None].expand_as(source) < 0.5
    out = edit.run(guide(model, edit.trajectory, edit.src), modulated(blend_fraction=1.0, mask=mask))
    unmasked = edit.run(guide(model, edit.trajectory, edit.src), modulated())
    torch.testing.assert_close(out[outside], source[outside], atol=1e-4, rtol=1e-4)
    assert (out[inside] - source[inside]).abs().max() > 1e-2           # the edited region moved
    assert (unmasked[outside] - source[outside]).abs().max() > 1e-2    # without the mask the background moves


# ----------------------------------------------------------------------------------------------- gradient
def make_probe(check):
    """A KSAMPLER whose function hands a live GuideRun (real guider, conds, options) to `check`."""
    import comfy.samplers
    guide_module, sampler = harness.pack_module("nodes.fade.guide"), harness.pack_module("nodes.fade.sampler")

    def probe(model, x, sigmas, extra_args=None, callback=None, disable=None):
        settings = guide_module.find_guide(extra_args.get("model_options"))
        check(sampler.GuideRun(settings, model, x, sigmas, extra_args), x, sigmas)
        return x
    return comfy.samplers.KSAMPLER(probe)


# ComfyUI's model code runs a few steps in float32 whatever the model dtype: Wan's patch embedding (x.float()),
# HunyuanVideo's and Predict2's rotary embedding (q, k cast to float32). Those bound how closely a float64
# finite difference can agree, so they get a larger step and tolerance. Cosmos 1.0 does not run in float64 at all
# (its norms mix dtypes), so it is checked in float32.
FLOAT32_ISLANDS = {"wan21": ["patch_embedding"], "wan22_5b": ["patch_embedding"], "hunyuan_video": [],
                   "hunyuan_video15": [], "cosmos_predict2": []}
FLOAT32_ONLY = {"cosmos1"}


def kernel_bound(name):
    """Models whose code on this host calls comfy-kitchen's fused kernels even under ComfyUI's training switch;
    the kernels take no float64, so those are checked in float32 (v0.8: every RoPE; v0.33: Predict2's)."""
    import comfy.model_management as mm
    if harness.version_tuple() < (0, 8, 0):
        return False
    if not hasattr(mm, "in_training"):
        return name in ("wan21", "wan22_5b", "hunyuan_video", "hunyuan_video15")
    return name == "cosmos_predict2"


@pytest.mark.parametrize("name", FADE_VARIANTS)
def test_gradient_equals_central_finite_difference(name):
    model = tm.build(name)                # own copy: converted to float64 in place
    dm = model.get_model_object("diffusion_model")
    float32_only = name in FLOAT32_ONLY or kernel_bound(name)
    dtype = torch.float32 if float32_only else torch.float64
    with torch.inference_mode():         # as a loader would: the weights stay inference tensors
        dm.to(dtype)
        for island in FLOAT32_ISLANDS.get(name, []):
            getattr(dm, island).to(torch.float32)
    if hasattr(dm, "dtype"):
        dm.dtype = dtype
    latent = source_latent(name)
    latent = {"samples": latent["samples"].to(dtype)}
    sigmas = schedule(model, 4).to(dtype)
    src = [[c.to(dtype), {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v)
                          for k, v in extra.items()}] for c, extra in tm.conditioning(name, 1)]
    with harness.pack_module("nodes.comfy_glue.gradient_pass").training_switch():   # float64 inversion: plain model code
        noise, trajectory = invert(model, latent, sigmas, 0, src)
    guided = guide(model, trajectory, src, sketch_blocks=2, spectrum="3d",
                   lpf=harness.call_node("FADE_GaussianLPF3D", filter_type="gaussian", spatial_cutoff=0.5,
                                         temporal_cutoff=0.5, butterworth_order=4)[0])
    results = {}

    def check(run, x, sigmas_run):
        step = 1
        z = trajectory.at_step(step, x.device, dtype) + 0.1 * torch.randn(
            x.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
        sigma = sigmas_run[step] * x.new_ones([x.shape[0]])
        grad = run.gradient(step, z, sigma).double()
        direction = torch.randn(z.shape, generator=torch.Generator().manual_seed(4), dtype=dtype)
        references = run.reference(step, sigma, z)
        fade_sketch = harness.pack_module("nodes.algo.sketch")

        def energy(v):
            with torch.no_grad():
                feats = run.features(v, sigma, for_gradient=True)
                return float(fade_sketch.sketch_energy(feats, references, [run.band] * len(feats), "3d"))
        h = 1e-2 if float32_only else 1e-3 if name in FLOAT32_ISLANDS else 1e-5
        fd = (energy(z + h * direction) - energy(z - h * direction)) / (2 * h)
        results["analytic"], results["fd"] = float((grad * direction).sum()), fd

    import comfy.samplers
    guider = comfy.samplers.CFGGuider(guided)
    guider.inner_set_conds({"positive": src})
    # The finite differences run the same plain model code as the gradient pass (ComfyUI's training switch).
    with torch.inference_mode(), harness.pack_module("nodes.comfy_glue.gradient_pass").training_switch():
        guider.sample(noise.generate_noise(latent), latent["samples"], make_probe(check), sigmas,
                      disable_pbar=True, seed=0)
    assert results["fd"] != 0.0
    tolerance = 1e-2 if float32_only else 1e-3 if name in FLOAT32_ISLANDS else 1e-6
    assert results["analytic"] == pytest.approx(results["fd"], rel=tolerance)


@pytest.mark.parametrize("name", ["wan21", "hunyuan_video", "cosmos1"])
@pytest.mark.parametrize("feature", ["attention", "block"])
def test_gradient_pass_runs_only_the_sketch_blocks(models, name, feature):
    model = models(name)
    arch_mod = harness.pack_module("nodes.architectures")
    latent = source_latent(name)
    sigmas = schedule(model, 4)
    src = tm.conditioning(name, 1)
    noise, trajectory = invert(model, latent, sigmas, 0, src)
    k = tm.variant(name).num_blocks // 2 if name != "hunyuan_video" else 1   # Hunyuan: 2 double blocks
    guided = guide(model, trajectory, src, sketch_blocks=k, feature=feature)
    entered = []

    def check(run, x, sigmas_run):
        blocks = run.arch.block_list(run.base_model.diffusion_model)
        handles = [b.register_forward_pre_hook(lambda m, a, i=i: entered.append(i)) for i, b in enumerate(blocks)]
        try:
            run.gradient(1, x, sigmas_run[1] * x.new_ones([x.shape[0]]))
        finally:
            for h in handles:
                h.remove()

    import comfy.samplers
    guider = comfy.samplers.CFGGuider(guided)
    guider.inner_set_conds({"positive": src})
    with torch.inference_mode():
        guider.sample(noise.generate_noise(latent), latent["samples"], make_probe(check), sigmas,
                      disable_pbar=True, seed=0)
    assert sorted(set(entered)) == list(range(k))
    assert len(arch_mod.find_architecture(model.get_model_object("diffusion_model")).block_list(
        model.get_model_object("diffusion_model"))) > k


@pytest.mark.parametrize("name", ["wan21", "hunyuan_video"])
def test_offloading_activations_gives_the_same_gradient(models, name):
    model = models(name)
    latent = source_latent(name)
    sigmas = schedule(model, 4)
    src = tm.conditioning(name, 1)
    noise, trajectory = invert(model, latent, sigmas, 0, src)
    grads = {}
    for memory in ("fast", "offload activations"):
        guided = guide(model, trajectory, src, memory=memory, sketch_blocks=1)

        def check(run, x, sigmas_run, memory=memory):
            z = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
            grads[memory] = run.gradient(1, z, sigmas_run[1] * x.new_ones([x.shape[0]]))

        import comfy.samplers
        guider = comfy.samplers.CFGGuider(guided)
        guider.inner_set_conds({"positive": src})
        with torch.inference_mode():
            guider.sample(noise.generate_noise(latent), latent["samples"], make_probe(check), sigmas,
                          disable_pbar=True, seed=0)
    assert grads["fast"].abs().max() > 0
    torch.testing.assert_close(grads["offload activations"], grads["fast"], rtol=1e-5, atol=1e-8)


def reference_cache():
    return harness.pack_module("nodes.fade.reference_cache")


def trajectory_entries(trajectory):
    return [k for k in reference_cache().REFERENCE_CACHE.keys() if k.trajectory_uid == trajectory.uid]


def test_a_rerun_reuses_the_source_features_and_reproduces_the_first_run(models):
    model = models("wan21")
    edit = Edit(model, "wan21", 4)
    guided, reports = observed(guide(model, edit.trajectory, edit.src, guided_fraction=0.5))
    first = edit.run(guided, cfg=2.0)
    assert reports.last.references == {"computed": 2, "reused": 0, "refused": 0}   # one per guided step
    assert len(trajectory_entries(edit.trajectory)) == 2
    assert torch.equal(first, edit.run(guided, cfg=2.0))
    assert reports.last.references == {"computed": 0, "reused": 2, "refused": 0}
    # another source prompt is another key: computed again
    other, other_reports = observed(guide(model, edit.trajectory, edit.tgt, guided_fraction=0.5))
    edit.run(other, cfg=2.0)
    assert other_reports.last.references["computed"] == 2


def test_a_weight_patch_after_the_guide_invalidates_the_source_features(models):
    """A LoRA-like patch applied to the guided MODEL changes the sketch features: the cached ones (unpatched model)
    must not be reused. Step 0 starts on the trajectory, so with fresh features G_0 is zero to working
    precision, with stale ones it is not."""
    model = models("wan21")
    edit = Edit(model, "wan21", 4)
    guided, reports = observed(guide(model, edit.trajectory, edit.src, guided_fraction=0.5))
    edit.run(guided, cfg=2.0)
    assert reports.last.references["computed"] == 2
    fresh_step0 = reports.last.energies[0]
    weight = guided.get_model_object("diffusion_model.blocks.0.self_attn.q.weight")
    delta = 0.5 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(3)).to(weight.dtype)
    patched = guided.clone()
    patched.add_patches({"diffusion_model.blocks.0.self_attn.q.weight": (delta,)}, 1.0)
    edit.run(patched, cfg=2.0)
    assert reports.last.references == {"computed": 2, "reused": 0, "refused": 0}
    assert reports.last.energies[0] <= max(10 * fresh_step0, 1e-9)
    # the patch does change the features (so stale ones would steer toward the wrong source)
    assert abs(reports.last.energies[1] - reports.reports[0].energies[1]) > 1e-3 * reports.reports[0].energies[1]


def test_the_reference_cache_keeps_to_its_budget_and_evicts_least_recently_used(models, caplog):
    import comfy.model_management as mm
    rc = reference_cache()
    model = models("wan21")
    mm.load_models_gpu([model])
    base = model.model
    edit = Edit(model, "wan21", 2)
    settings = guide_of(guide(model, edit.trajectory, edit.src))
    band = torch.randn(64, 8, dtype=torch.complex64)            # 4 KiB as (real, imaginary) float32
    cache = rc.ReferenceCache(budget_bytes=int(2.5 * 4096))

    def put(step):
        key = rc.make_key(settings, model, {}, step, 0.5, torch.zeros(1, 16, 2, 4, 4))
        return cache.compute(key, base, edit.trajectory, lambda: ([band], torch.float32), "cpu")

    with caplog.at_level(logging.INFO, logger="FADE"):
        assert put(0)[1] == "computed" and put(1)[1] == "computed"
        assert put(0)[1] == "reused"                               # 0 is now the most recently used
        assert put(2)[1] == "computed"                             # evicts 1, the least recently used
    assert cache.bytes_used <= cache.budget_bytes and len(cache) == 2
    assert sorted(k.step for k in cache.keys()) == [0, 2]
    assert any("evicted 1 least recently used" in r.getMessage() for r in caplog.records)
    bands, status = put(1)
    assert status == "computed" and torch.equal(bands[0], band)
    tiny = rc.ReferenceCache(budget_bytes=1024)
    key = rc.make_key(settings, model, {}, 0, 0.5, torch.zeros(1))
    with caplog.at_level(logging.INFO, logger="FADE"):
        assert tiny.compute(key, base, edit.trajectory, lambda: ([band], torch.float32), "cpu")[1] == "refused"
    assert len(tiny) == 0 and any("larger than the whole budget" in r.getMessage() for r in caplog.records)


def test_reference_features_are_freed_with_the_trajectory_and_when_models_unload(models):
    import gc
    import comfy.model_management as mm
    model = models("wan21")
    edit = Edit(model, "wan21", 4)
    edit.run(guide(model, edit.trajectory, edit.src, guided_fraction=0.5), cfg=2.0)
    assert len(trajectory_entries(edit.trajectory)) == 2
    mm.unload_all_models()                                        # "Unload models"
    rc = reference_cache()
    rc.REFERENCE_CACHE.sweep()
    assert trajectory_entries(edit.trajectory) == []
    # and when ComfyUI's node cache lets go of the trajectory
    edit.run(guide(model, edit.trajectory, edit.src, guided_fraction=0.5), cfg=2.0)
    uid = edit.trajectory.uid
    assert len(trajectory_entries(edit.trajectory)) == 2
    del edit
    gc.collect()
    assert [k for k in rc.REFERENCE_CACHE.keys() if k.trajectory_uid == uid] == []


def test_reference_tokens_in_front_of_the_video_are_cut_away(models):
    """HunyuanVideo puts ref_latent tokens before the video tokens; the sketch features must start after them."""
    model = models("hunyuan_video")
    latent = source_latent("hunyuan_video")
    sigmas = schedule(model, 3)
    ref = tm.latent("hunyuan_video", 1, 32, 32, seed=4)["samples"]
    src = [[c, dict(extra, ref_latent=ref)] for c, extra in tm.conditioning("hunyuan_video", 1)]
    noise, trajectory = invert(model, latent, sigmas, 0, src)
    guided = guide(model, trajectory, src, sketch_blocks=1, feature="attention")
    seen = {}

    def check(run, x, sigmas_run):
        module = run.arch.feature_module(run.arch.block_list(run.base_model.diffusion_model)[0], "attention")
        handle = module.register_forward_hook(lambda m, a, out: seen.setdefault("raw", out.detach().clone()))
        try:
            with torch.no_grad():
                seen["grid"] = run.features(x, sigmas_run[1] * x.new_ones([x.shape[0]]), False)[0]
        finally:
            handle.remove()
        seen["grid_shape"] = run.grid

    import comfy.samplers
    guider = comfy.samplers.CFGGuider(guided)
    guider.inner_set_conds({"positive": src})
    with torch.inference_mode():
        guider.sample(noise.generate_noise(latent), latent["samples"], make_probe(check), sigmas, disable_pbar=True,
                      seed=0)
    t, h, w = seen["grid_shape"]
    raw, grid = seen["raw"], seen["grid"]
    extra = raw.shape[1] - t * h * w
    assert extra == h * w                                   # one reference frame's tokens
    video = raw[:, extra:].transpose(1, 2).reshape(grid.shape)
    torch.testing.assert_close(grid, video)


def test_other_nodes_sharing_the_model_keep_working(models):
    model = models("hunyuan_video")
    latent = source_latent("hunyuan_video")
    sigmas = schedule(model, 3)
    src, tgt, neg = (tm.conditioning("hunyuan_video", i) for i in (1, 2, 3))
    before = tm.sample(model, tm.latent("hunyuan_video", 9, 32, 32), tgt, neg, steps=3, seed=9)
    noise, trajectory = invert(model, latent, sigmas, 0, neg)
    sample(guide(model, trajectory, src), noise, latent, sigmas, modulated(), tgt, neg, cfg=2.0)
    after = tm.sample(model, tm.latent("hunyuan_video", 9, 32, 32), tgt, neg, steps=3, seed=9)
    assert torch.equal(before, after)
    assert model.wrappers.get("sampler_sample", {}).get("fade_freeinit") is None   # the input MODEL is unpatched


def test_interrupt_inside_the_gradient_pass_stops_and_leaves_nothing_patched(models):
    import comfy.model_management as mm
    model = models("wan21")
    latent = source_latent("wan21")
    sigmas = schedule(model, 4)
    src, tgt = tm.conditioning("wan21", 1), tm.conditioning("wan21", 2)
    noise, trajectory = invert(model, latent, sigmas, 0, src)
    guided = guide(model, trajectory, src)
    dm = model.get_model_object("diffusion_model")
    calls = {"n": 0}

    def interrupt_on_second_sketch_block(module, args):
        calls["n"] += 1
        if calls["n"] == 2:          # 1: step 0's reference pass, 2: its gradient pass
            mm.interrupt_current_processing(True)

    handle = dm.blocks[1].register_forward_pre_hook(interrupt_on_second_sketch_block)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            sample(guided, noise, latent, sigmas, modulated(), tgt)
    finally:
        handle.remove()
        mm.interrupt_current_processing(False)
    assert not dm.blocks[1]._forward_hooks and not dm.blocks[1]._forward_pre_hooks
    for block in dm.blocks:
        assert not block.self_attn._forward_hooks


# ----------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_say_what_to_connect(models, caplog):
    import comfy.samplers
    model = models("wan21")
    latent = source_latent("wan21")
    sigmas = schedule(model, 4)
    src, tgt = tm.conditioning("wan21", 1), tm.conditioning("wan21", 2)
    noise, trajectory = invert(model, latent, sigmas, 0, src)

    other = source_latent("wan21", seed=7)
    with pytest.raises(ValueError, match="different latent"):
        noise.generate_noise(other)
    with pytest.raises(ValueError, match="same SIGMAS"):
        sample(guide(model, trajectory, src), noise, latent, schedule(model, 6), modulated(), tgt)
    with pytest.raises(ValueError, match="shape"):
        noise.generate_noise(tm.latent("wan21", 13, 32, 32, seed=1))
    with pytest.raises(ValueError, match="at most 4"):
        guide(model, trajectory, src, sketch_blocks=9)
    with pytest.raises(ValueError, match="4-D"):
        invert(model, {"samples": torch.randn(2, 16, 8, 8)}, sigmas)
    with pytest.raises(ValueError, match="Supported video models"):
        guide(models("sd15"), trajectory, src)
    with pytest.raises(ValueError, match="ends at 0|end at"):
        invert(model, latent, sigmas[:-1])
    with pytest.raises(ValueError, match="descending"):
        invert(model, latent, sigmas.flip(0))
    with pytest.raises(ValueError, match="negative"):
        harness.call_node("FADE_DDIMInvert", model=model, conditioning=src, latent=latent, sigmas=sigmas, cfg=4.0,
                          refine=0)
    with pytest.raises(ValueError, match="empty"):
        invert(model, tm.latent("wan21", 9, 32, 32), sigmas)
    with caplog.at_level(logging.WARNING, logger="FADE"):
        sample(guide(model, trajectory, src), noise, latent, sigmas, comfy.samplers.sampler_object("euler"), tgt)
    assert any("cannot apply" in r.getMessage() for r in caplog.records)
