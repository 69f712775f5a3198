"""Wan 2.2 A14B expert pairs and image-to-video (issue 12), on tiny models built with ComfyUI's classes.

Expert pairs: two tiny Wan models of one layout with different weights. Every model call is recorded with the
expert that made it and its sigma, so the tests check which expert sampled, inverted or produced sketch features
at each sigma; FreeInit's passes are recorded per expert call (SAMPLER_SAMPLE)."""
import pytest
import torch

import harness
import tiny_models as tm

BOUNDARY = 0.875
STEPS = 6


# ----------------------------------------------------------------------------------------------- helpers
class CallLog:
    """Records (expert, sigma, grad_enabled) for every model call of the tagged experts."""

    def __init__(self):
        self.calls = []

    def tag(self, model, name):
        clone = model.clone()

        def wrapper(apply_model, args):   # args["timestep"] is the sigma here (apply_model converts it)
            self.calls.append((name, float(args["timestep"][0]), torch.is_grad_enabled()))
            return apply_model(args["input"], args["timestep"], **args["c"])
        clone.set_model_unet_function_wrapper(wrapper)
        return clone


class PartRecorder:
    """SAMPLER_SAMPLE wrapper: each sampling call's expert, noise, sigmas and (model-space) result."""

    def __init__(self):
        self.parts = []

    def tag(self, model, name):
        import comfy.patcher_extension as pe
        clone = model.clone()

        def wrapper(executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
            out = executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
            self.parts.append(dict(expert=name, noise=noise.detach().clone(), sigmas=sigmas.detach().cpu().clone(),
                                   result=out.detach().clone()))
            return out
        clone.add_wrapper_with_key(pe.WrappersMP.SAMPLER_SAMPLE, "fadetest_recorder", wrapper)
        return clone


@pytest.fixture(scope="module")
def pair(comfy):
    return tm.expert_pair("wan21")


def small_latent(name="wan21", seed=None):
    v = tm.variant(name)
    size = 2 * v.s_stride * max(v.patch[1], 2)
    return tm.latent(name, 1 + 2 * v.t_stride, size, size, seed=seed)


def schedule(model, steps=STEPS):
    import comfy.samplers
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps).cpu()


def pair_guider(high, low, positive, negative, cfg=2.0, boundary=BOUNDARY):
    return harness.call_node("FADE_ExpertPairGuider", high_noise_model=high, low_noise_model=low, positive=positive,
                             negative=negative, high_cfg=cfg, low_cfg=cfg, boundary=boundary)[0]


def run_guider(guider, latent, sigmas, sampler="euler", noise=None, seed=0, callback=None):
    """SamplerCustomAdvanced's path: fix the latent, draw the noise, guider.sample."""
    import comfy.sample
    import comfy.samplers
    samples = comfy.sample.fix_empty_latent_channels(guider.model_patcher, latent["samples"])
    if noise is None:
        noise = comfy.sample.prepare_noise(samples, seed)
    elif hasattr(noise, "generate_noise"):
        noise = noise.generate_noise(dict(latent, samples=samples))
    sampler = comfy.samplers.sampler_object(sampler) if isinstance(sampler, str) else sampler
    with torch.inference_mode():
        return guider.sample(noise, samples, sampler, sigmas, denoise_mask=latent.get("noise_mask"),
                             callback=callback, disable_pbar=True, seed=seed)


def conds(name="wan21"):
    return tm.conditioning(name, 1), tm.conditioning(name, 2)


def experts_module():
    return harness.pack_module("nodes.algo.experts")


def expected_expert(sigma, boundary=BOUNDARY):
    return experts_module().expert_for_sigma(sigma, boundary)


# ----------------------------------------------------------------------------------------------- sampling
def test_pair_guider_samples_each_step_with_its_expert_like_the_stock_two_sampler_graph(pair):
    """Bit-identical to two chained CFGGuider samplings (KSamplerAdvanced: leftover noise, then add_noise off),
    and every model call is made by the expert its sigma belongs to."""
    import comfy.samplers
    high, low = pair
    log = CallLog()
    pos, neg = conds()
    latent = small_latent()
    sigmas = schedule(high)
    split = experts_module().split_step(sigmas, BOUNDARY)
    assert 0 < split < STEPS
    seen = []
    out = run_guider(pair_guider(log.tag(high, "high"), log.tag(low, "low"), pos, neg), latent, sigmas,
                     callback=lambda step, x0, x, total: seen.append((step, total)))
    assert [step for step, _ in seen] == list(range(STEPS)) and {t for _, t in seen} == {STEPS}   # one bar
    assert {(name, expected_expert(s)) for name, s, _ in log.calls} == {("high", "high"), ("low", "low")}
    assert sorted({s for _, s, _ in log.calls}, reverse=True) == [float(s) for s in sigmas[:-1]]

    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        first = comfy.samplers.CFGGuider(high)
        first.set_conds(pos, neg)
        first.set_cfg(2.0)
        x = first.sample(noise, latent["samples"], comfy.samplers.sampler_object("euler"), sigmas[:split + 1],
                         disable_pbar=True, seed=0)
        second = comfy.samplers.CFGGuider(low)
        second.set_conds(pos, neg)
        second.set_cfg(2.0)
        stock = second.sample(torch.zeros_like(x), x, comfy.samplers.sampler_object("euler"), sigmas[split:],
                              disable_pbar=True, seed=0)
    assert torch.equal(out, stock)


@pytest.mark.parametrize("steps", [1, 3, 9])
def test_any_step_count_and_a_boundary_outside_the_schedule(pair, steps):
    high, low = pair
    log = CallLog()
    pos, neg = conds()
    sigmas = schedule(high, steps)
    for boundary in (BOUNDARY, 1.5, 0.0):
        log.calls.clear()
        out = run_guider(pair_guider(log.tag(high, "high"), log.tag(low, "low"), pos, neg, boundary=boundary),
                         small_latent(), sigmas)
        assert torch.isfinite(out).all()
        assert all(name == expected_expert(s, boundary) for name, s, _ in log.calls)


def test_pair_guider_refuses_experts_of_different_models(models, pair):
    with pytest.raises(ValueError, match="latent formats"):
        pair_guider(pair[0], models("wan22_5b"), *conds())


# ----------------------------------------------------------------------------------------------- FreeInit
def freeinit(model, passes=2, coarse_to_fine=False):
    return harness.call_node("FADE_FreeInit", model=model, passes=passes, renoise_sigma=0.0,
                             coarse_to_fine=coarse_to_fine)[0]


@pytest.mark.parametrize("attached_to", ["high", "low", "both"])
def test_freeinit_pass_spans_both_experts_and_restarts_from_the_low_experts_clean_result(pair, attached_to):
    high, low = pair
    rec = PartRecorder()
    high_in = freeinit(high) if attached_to in ("high", "both") else high
    low_in = freeinit(low) if attached_to in ("low", "both") else low
    pos, neg = conds()
    latent = small_latent()
    sigmas = schedule(high)
    seen = []
    out = run_guider(pair_guider(rec.tag(high_in, "high"), rec.tag(low_in, "low"), pos, neg), latent, sigmas,
                     seed=5, callback=lambda step, x0, x, total: seen.append((step, total)))
    assert [p["expert"] for p in rec.parts] == ["high", "low", "high", "low"]       # 2 passes x both experts
    total = sum(len(p["sigmas"]) - 1 for p in rec.parts)
    assert [s for s, _ in seen] == list(range(total)) and {t for _, t in seen} == {total}
    assert float(rec.parts[1]["sigmas"][-1]) == 0.0 and float(rec.parts[3]["sigmas"][-1]) == 0.0

    # Pass 2 starts at the re-initialisation of pass 1's LOW-expert clean result (not the high expert's noisy one).
    renoise = harness.pack_module("nodes.freeinit.renoise")
    validation = harness.pack_module("nodes.comfy_glue.validation")
    spectral = harness.pack_module("nodes.algo.spectral")
    clean = low.model.process_latent_out(rec.parts[1]["result"].to(torch.float32))
    first_noise = rec.parts[0]["noise"]
    sigma_renoise = renoise.resolve_renoise_sigma(low.get_model_object("model_sampling"), 0.0)
    with torch.inference_mode():
        expected = renoise.reinitialised_noise(low, clean, first_noise, validation.pass_seed(5, 1),
                                               spectral.DEFAULT_FILTER, sigma_renoise, latent["samples"],
                                               float(rec.parts[2]["sigmas"][0]))
    torch.testing.assert_close(rec.parts[2]["noise"], expected.to(first_noise.dtype), rtol=0, atol=0)
    assert torch.equal(out, low.model.process_latent_out(rec.parts[3]["result"].to(torch.float32)))


def test_freeinit_with_different_settings_on_the_two_experts_is_refused(pair):
    with pytest.raises(ValueError, match="different settings"):
        pair_guider(freeinit(pair[0], passes=2), freeinit(pair[1], passes=3), *conds())


def test_freeinit_on_one_expert_of_the_stock_two_sampler_graph_points_to_the_pair_guider(pair):
    import comfy.samplers
    high, low = pair
    pos, neg = conds()
    sigmas = schedule(high)
    split = experts_module().split_step(sigmas, BOUNDARY)
    latent = small_latent()["samples"]
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    guider = comfy.samplers.CFGGuider(freeinit(high))
    guider.set_conds(pos, neg)
    with torch.inference_mode(), pytest.raises(ValueError, match="Wan Expert Pair Guider"):
        guider.sample(noise, latent, comfy.samplers.sampler_object("euler"), sigmas[:split + 1], disable_pbar=True,
                      seed=0)
    # The low expert's KSamplerAdvanced: a schedule from the middle, no noise added.
    guider = comfy.samplers.CFGGuider(freeinit(low))
    guider.set_conds(pos, neg)
    with torch.inference_mode(), pytest.raises(ValueError, match="Wan Expert Pair Guider"):
        guider.sample(torch.zeros_like(latent), noise, comfy.samplers.sampler_object("euler"), sigmas[split:],
                      disable_pbar=True, seed=0)


# ----------------------------------------------------------------------------------------------- FADE
def invert(high, latent, sigmas, low=None, boundary=BOUNDARY, refine=0):
    inputs = dict(model=high, conditioning=tm.conditioning("wan21", 3), latent=latent, sigmas=sigmas, cfg=1.0,
                  refine=refine)
    if low is not None:
        inputs.update(low_noise_model=low, boundary=boundary)
    return harness.call_node("FADE_DDIMInvert", **inputs)


def guide(model, trajectory, fraction=1.0):
    lpf = harness.call_node("FADE_GaussianLPF3D", filter_type="box", spatial_cutoff=0.67, temporal_cutoff=1.0,
                            butterworth_order=4)[0]
    return harness.call_node("FADE_SketchSpectrumGuide", model=model, trajectory=trajectory,
                             source_conditioning=tm.conditioning("wan21", 4), filter=lpf, sketch_blocks=2,
                             strength=1.0, guided_fraction=fraction, feature="attention", spectrum="2d",
                             normalisation="unit", ratio_min=0.33, ratio_max=3.0)[0]


def modulated():
    return harness.call_node("FADE_ModulatedDDIMSampler", blend_fraction=0.7)[0]


@pytest.mark.parametrize("refine", [0, 2])
def test_inversion_uses_the_expert_of_each_sigma(pair, refine):
    high, low = pair
    log = CallLog()
    sigmas = schedule(high)
    noise, trajectory = invert(log.tag(high, "high"), small_latent(seed=1), sigmas, log.tag(low, "low"),
                               refine=refine)
    # cfg 1: one (cond) call per model evaluation. A refined inversion is verified by one round trip down the same
    # schedule, and an item it leaves worse than 1 % is compared with plain DDIM (inverted and round-tripped too).
    report = trajectory.report
    compared = refine > 0 and report.plain_error is not None
    assert len(log.calls) == STEPS * (1 + refine) + (STEPS if refine else 0) + (2 * STEPS if compared else 0)
    assert (report.refined_error is not None) == (refine > 0)
    # every call, the round trips' included, is made by the expert that samples that sigma
    assert {name for name, _, _ in log.calls} == {"high", "low"}
    assert all(name == expected_expert(s) for name, s, _ in log.calls)
    assert len(trajectory.latents) == STEPS + 1 and trajectory.boundary == BOUNDARY


def test_one_model_inversion_is_unchanged_by_the_new_inputs(pair):
    high, _ = pair
    sigmas = schedule(high)
    a = invert(high, small_latent(seed=1), sigmas)[1]
    b = invert(high, small_latent(seed=1), sigmas, low=high)[1]     # the same model as both experts
    assert all(torch.equal(x, y) for x, y in zip(a.latents, b.latents))


def test_guided_edit_takes_each_steps_sketch_features_from_the_expert_sampling_it(pair):
    high, low = pair
    sigmas = schedule(high)
    source = small_latent(seed=1)
    noise, trajectory = invert(high, source, sigmas, low)
    log = CallLog()
    guided_high = guide(log.tag(high, "high"), trajectory, fraction=1.0)     # guide one expert: it guides both
    out = run_guider(pair_guider(guided_high, log.tag(low, "low"), *conds(), cfg=1.0), source, sigmas,
                     sampler=modulated(), noise=noise)
    assert torch.isfinite(out).all()
    gradient_calls = [(name, s) for name, s, grad in log.calls if grad]
    assert {name for name, _ in gradient_calls} == {"high", "low"}
    assert all(name == expected_expert(s) for name, s in gradient_calls)
    # One gradient pass per guided step (guided_fraction 1: every step), each by its expert.
    assert sorted({s for _, s in gradient_calls}, reverse=True) == [float(s) for s in sigmas[:-1]]


def test_a_guided_part_of_the_schedule_outside_the_pair_guider_points_to_it(pair):
    import comfy.samplers
    high, low = pair
    sigmas = schedule(high)
    source = small_latent(seed=1)
    noise, trajectory = invert(high, source, sigmas, low)
    split = experts_module().split_step(sigmas, BOUNDARY)
    guider = comfy.samplers.CFGGuider(guide(high, trajectory))
    guider.set_conds(tm.conditioning("wan21", 1), tm.conditioning("wan21", 2))
    with torch.inference_mode(), pytest.raises(ValueError, match="Wan Expert Pair Guider"):
        guider.sample(noise.generate_noise(source), source["samples"], modulated(), sigmas[:split + 1],
                      disable_pbar=True, seed=0)


def test_inverting_and_editing_at_different_boundaries_is_refused(pair):
    high, low = pair
    sigmas = schedule(high)
    source = small_latent(seed=1)
    noise, trajectory = invert(high, source, sigmas, low, boundary=0.9)
    guider = pair_guider(guide(high, trajectory), low, *conds(), boundary=BOUNDARY)
    with pytest.raises(ValueError, match="boundary"):
        run_guider(guider, source, sigmas, sampler=modulated(), noise=noise)


# ----------------------------------------------------------------------------------------------- image to video
def i2v_setup(name):
    shape = tm.latent_shape(name, 9, 32, 32)
    pos = tm.i2v_conditioning(name, tm.conditioning(name, 1), shape, seed=4)
    neg = tm.i2v_conditioning(name, tm.conditioning(name, 2), shape, seed=4)
    return {"samples": torch.zeros(shape)}, pos, neg


class ConcatLog:
    def __init__(self):
        self.concats = []

    def tag(self, model):
        clone = model.clone()

        def wrapper(apply_model, args):
            self.concats.append(args["c"]["c_concat"].detach().clone())
            return apply_model(args["input"], args["timestep"], **args["c"])
        clone.set_model_unet_function_wrapper(wrapper)
        return clone


@pytest.mark.parametrize("name", tm.params(list(tm.I2V_CONCAT)))
def test_freeinit_leaves_concat_image_conditioning_untouched(models, name):
    model = models(name)
    latent, pos, neg = i2v_setup(name)
    stock_log, freeinit_log = ConcatLog(), ConcatLog()
    tm.sample(stock_log.tag(model), latent, pos, neg, steps=3)
    out = tm.sample(freeinit_log.tag(freeinit(model, passes=2)), latent, pos, neg, steps=3)
    assert torch.isfinite(out).all()
    assert len(freeinit_log.concats) == 2 * len(stock_log.concats)
    assert all(torch.equal(c, stock_log.concats[0]) for c in stock_log.concats + freeinit_log.concats)


def test_expert_pair_image_to_video_gives_both_experts_the_image(comfy):
    high, low = tm.expert_pair("wan22_i2v")
    latent, pos, neg = i2v_setup("wan22_i2v")
    log = ConcatLog()
    out = run_guider(pair_guider(log.tag(freeinit(high)), log.tag(low), pos, neg, boundary=0.9), latent,
                     schedule(high, 4))
    assert torch.isfinite(out).all() and len(log.concats) == 2 * 4
    assert all(torch.equal(c, log.concats[0]) for c in log.concats)


def ti2v_setup(name="wan22_5b"):
    shape = tm.latent_shape(name, 9, 64, 64)
    pos, neg = tm.conditioning(name, 1), tm.conditioning(name, 2)
    if name == "hunyuan_video":       # HunyuanImageToVideo 'v2 (replace)'
        import node_helpers
        pos = node_helpers.conditioning_set_values(pos, {"guiding_frame_index": 0})
    return tm.ti2v_latent(name, shape, seed=3), pos, neg


@pytest.mark.parametrize("name", tm.params(list(tm.I2V_PINNED)))
def test_freeinit_keeps_a_pinned_image_frame_bit_exact(models, name):
    """Wan 2.2 TI2V 5B (and HunyuanVideo's 'v2 (replace)') pin the start image's latent frame through the noise
    mask: after FreeInit's passes that frame is bit-identical to the stock sampler's (FreeInit keeps the first
    pass's pinned frames), and equal to the image's latent to rounding."""
    model = models(name)
    latent, pos, neg = ti2v_setup(name)
    stock = tm.sample(model, latent, pos, neg, steps=4, seed=2)
    out = tm.sample(freeinit(model, passes=3), latent, pos, neg, steps=4, seed=2)
    assert torch.equal(out[:, :, :1], stock[:, :, :1])
    assert not torch.equal(out[:, :, 1:], stock[:, :, 1:])
    torch.testing.assert_close(out[:, :, :1], latent["samples"][:, :, :1], rtol=0, atol=1e-5)


def test_fade_keeps_a_pinned_image_frame_bit_exact(models):
    """The guide's modulation does not move pinned frames: the edit's pinned frame equals plain ddim's from the
    same inverted start."""
    model = models("wan22_5b")
    latent, pos, neg = ti2v_setup()
    sigmas = schedule(model, 4)
    source = {"samples": tm.latent("wan22_5b", 9, 64, 64, seed=1)["samples"]}
    source["samples"][:, :, :1] = latent["samples"][:, :, :1]
    noise, trajectory = harness.call_node("FADE_DDIMInvert", model=model, conditioning=tm.conditioning("wan22_5b", 3),
                                          latent=source, sigmas=sigmas, cfg=1.0, refine=0)
    edit_latent = dict(source, noise_mask=latent["noise_mask"])
    lpf = harness.call_node("FADE_GaussianLPF3D", filter_type="box", spatial_cutoff=0.67, temporal_cutoff=1.0,
                            butterworth_order=4)[0]
    guided = harness.call_node("FADE_SketchSpectrumGuide", model=model, trajectory=trajectory,
                               source_conditioning=tm.conditioning("wan22_5b", 3), filter=lpf, sketch_blocks=2,
                               strength=5.0, guided_fraction=1.0, feature="attention", spectrum="2d",
                               normalisation="unit", ratio_min=0.33, ratio_max=3.0)[0]

    def edit(m):
        import comfy.samplers
        g = comfy.samplers.CFGGuider(m)
        g.set_conds(pos, neg)
        g.set_cfg(2.0)
        return run_guider(g, edit_latent, sigmas, sampler=modulated(), noise=noise)
    plain, fade = edit(model), edit(guided)
    assert torch.equal(fade[:, :, :1], plain[:, :, :1])
    assert not torch.equal(fade[:, :, 1:], plain[:, :, 1:])


@pytest.mark.parametrize("name", tm.params(list(tm.I2V_CONCAT)))
def test_fade_features_are_the_video_tokens_of_image_to_video_models(models, name):
    """Concat image channels and CLIP vision context add no tokens to the video sequence: the guide runs on the
    video grid and modulates."""
    sampler_mod = harness.pack_module("nodes.fade.sampler")
    model = models(name)
    latent, pos, neg = i2v_setup(name)
    source = {"samples": tm.latent(name, 9, 32, 32, seed=1)["samples"]}
    sigmas = schedule(model, 3)
    noise, trajectory = harness.call_node("FADE_DDIMInvert", model=model, conditioning=pos, latent=source,
                                          sigmas=sigmas, cfg=1.0, refine=0)
    lpf = harness.call_node("FADE_GaussianLPF3D", filter_type="box", spatial_cutoff=0.67, temporal_cutoff=1.0,
                            butterworth_order=4)[0]
    guided = harness.call_node("FADE_SketchSpectrumGuide", model=model, trajectory=trajectory,
                               source_conditioning=pos, filter=lpf, sketch_blocks=2, strength=1.0,
                               guided_fraction=1.0, feature="attention", spectrum="2d", normalisation="unit",
                               ratio_min=0.33, ratio_max=3.0)[0]
    observed, reports = sampler_mod.observe_runs(guided)
    import comfy.samplers
    g = comfy.samplers.CFGGuider(observed)
    g.set_conds(pos, neg)
    g.set_cfg(2.0)
    out = run_guider(g, source, sigmas, sampler=modulated(), noise=noise)
    assert torch.isfinite(out).all()
    assert reports.last.modulated_steps and reports.last.blocks_run == [0, 1]
