"""FreeInit inside a real ComfyUI: every node on every tiny model, bit-identity of one pass, the band identities
of the re-initialisation, progress over all passes, and clear errors for bad input."""
import pytest
import torch

import harness
import tiny_models as tm

VIDEO_VARIANTS = tm.params(["wan21", "wan22_5b", "hunyuan_video", "hunyuan_video15", "ltxv", "mochi", "cosmos1",
                            "cosmos_predict2"])
ALL_VARIANTS = VIDEO_VARIANTS + tm.params(["sd15"])
STEPS = 3


def small_latent(name, seed=None):
    v = tm.variant(name)
    frames = 4 if not v.video else 1 + 2 * v.t_stride        # 3 latent frames for video models
    size = 2 * v.s_stride * max(v.patch[1], 2)
    return tm.latent(name, frames, size, size, seed=seed)


def lpf_node(kind="gaussian", ds=0.25, dt=0.25, n=4):
    return harness.call_node("FADE_GaussianLPF3D", filter_type=kind, spatial_cutoff=ds, temporal_cutoff=dt,
                             butterworth_order=n)


def freeinit(model, passes=2, lpf=None, renoise_sigma=0.0, coarse_to_fine=False):
    inputs = dict(model=model, passes=passes, renoise_sigma=renoise_sigma, coarse_to_fine=coarse_to_fine)
    if lpf is not None:
        inputs["filter"] = lpf
    return harness.call_node("FADE_FreeInit", **inputs)[0]


class PassRecorder:
    """A test-only SAMPLER_SAMPLE wrapper: records each pass's starting noise and model-space result."""

    def __init__(self):
        self.noises, self.results, self.sigmas = [], [], []

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        out = executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
        self.noises.append(noise.detach().clone())
        self.results.append(out.detach().clone())
        self.sigmas.append(sigmas.detach().clone())
        return out


def recorded(model):
    import comfy.patcher_extension as pe
    recorder = PassRecorder()
    clone = model.clone()
    clone.add_wrapper_with_key(pe.WrappersMP.SAMPLER_SAMPLE, "fadetest_recorder", recorder)
    return clone, recorder


def test_filter_node_outputs_a_filter_and_a_response_picture(comfy):
    spectral = harness.pack_module("nodes.algo.spectral")
    lpf, picture = lpf_node("butterworth", 0.3, 0.2, 3)
    assert isinstance(lpf, spectral.LowPassFilter)
    assert (lpf.kind, lpf.spatial_cutoff, lpf.temporal_cutoff, lpf.order) == ("butterworth", 0.3, 0.2, 3)
    assert lpf.mask(5, 6, 7).shape == (5, 6, 7) and lpf.mask(5, 6, 7).dtype == torch.float32
    assert picture.ndim == 4 and picture.shape[0] == 1 and picture.shape[-1] == 3
    assert picture.std() > 0.05                  # something was drawn
    other = lpf_node("ideal", 0.6, 0.2)[1]
    assert not torch.equal(picture, other)       # and it depends on the parameters


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_freeinit_runs_on_every_model(models, name):
    model = models(name)
    latent = small_latent(name)
    pos, neg = tm.conditioning(name, 1), tm.conditioning(name, 2)
    patched, recorder = recorded(freeinit(model, passes=2, lpf=lpf_node()[0], coarse_to_fine=True))
    out = tm.sample(patched, latent, pos, neg, steps=STEPS)
    plain = tm.sample(model, latent, pos, neg, steps=STEPS)
    assert out.shape == plain.shape and torch.isfinite(out).all()
    assert len(recorder.noises) == 2
    assert [len(s) - 1 for s in recorder.sigmas] == [1, 3]      # coarse-to-fine: int(3 / 2 * 1), all 3
    assert not torch.equal(out, plain)


def test_freeinit_runs_under_sampler_custom_advanced_with_progress_over_all_passes(models):
    """The SamplerCustomAdvanced path (guider.sample with a SAMPLER object and a progress callback)."""
    import comfy.samplers
    model = models("wan21")
    patched, recorder = recorded(freeinit(model, passes=3, coarse_to_fine=True))
    latent = small_latent("wan21")
    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds(tm.conditioning("wan21", 1), tm.conditioning("wan21", 2))
    guider.set_cfg(2.0)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", 6).cpu()
    seen = []
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = guider.sample(noise, latent["samples"], comfy.samplers.sampler_object("euler"), sigmas,
                            callback=lambda step, x0, x, total: seen.append((step, total)), disable_pbar=True,
                            seed=0)
    assert torch.isfinite(out).all() and len(recorder.noises) == 3
    assert [len(s) - 1 for s in recorder.sigmas] == [2, 4, 6]
    assert [step for step, _ in seen] == list(range(12)) and {total for _, total in seen} == {12}


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_noise_reinit_node_runs_on_every_model(models, name):
    model = models(name)
    previous = {"samples": small_latent(name, seed=3)["samples"]}
    noise = harness.call_node("FADE_FreeInitNoiseReinit", model=model, latent=previous, filter=lpf_node()[0],
                              noise_seed=5, fresh_seed=6, renoise_sigma=0.0)[0]
    empty = small_latent(name)
    n = noise.generate_noise(empty)
    assert n.shape == previous["samples"].shape and torch.isfinite(n).all()
    assert noise.seed == 6


@pytest.mark.parametrize("name", ["wan21", "sd15", "cosmos1"])
def test_one_pass_is_bit_identical_to_the_stock_sampler(models, name):
    model = models(name)
    latent = small_latent(name)
    pos, neg = tm.conditioning(name, 1), tm.conditioning(name, 2)
    stock = tm.sample(model, latent, pos, neg, steps=STEPS, seed=11)
    single = tm.sample(freeinit(model, passes=1), latent, pos, neg, steps=STEPS, seed=11)
    assert torch.equal(stock, single)


@pytest.mark.parametrize("name", ["wan21", "hunyuan_video", "sd15", "cosmos_predict2"])
def test_low_band_of_each_start_is_the_renoised_previous_result(models, name):
    """With an ideal filter, the low band of pass i's start equals that of renoise(result_{i-1}, first noise)."""
    spectral = harness.pack_module("nodes.algo.spectral")
    core = harness.pack_module("nodes.algo.freeinit")
    renoise = harness.pack_module("nodes.freeinit.renoise")
    sampling = harness.pack_module("nodes.comfy_glue.sampling")
    model = models(name)
    lpf = lpf_node("ideal", 0.5, 0.5)[0]
    patched, recorder = recorded(freeinit(model, passes=3, lpf=lpf))
    latent = small_latent(name)
    tm.sample(patched, latent, tm.conditioning(name, 1), tm.conditioning(name, 2), steps=STEPS, seed=4)
    ms = model.get_model_object("model_sampling")
    kind, sigma = sampling.parameterisation(ms), renoise.default_renoise_sigma(ms)
    first = recorder.noises[0]
    assert 0.0 < lpf.kept_fraction(*spectral.grid_shape(first)) < 1.0
    for i in (1, 2):
        start, previous = start_in_noise_units(ms, recorder, i), recorder.results[i - 1]
        assert float(recorder.sigmas[i][0]) == pytest.approx(min(sigma, float(recorder.sigmas[0][0])), rel=1e-5)
        renoised = core.renoise(previous.double(), first.double(), sigma, kind)
        low_start = spectral.lowpass(start.double(), lpf)
        low_want = spectral.lowpass(renoised, lpf)
        assert (low_start - low_want).abs().max().item() < 1e-5
        # and the high band is not the previous result's: fresh noise was drawn
        assert (start.double() - low_start - (renoised - low_want)).abs().max().item() > 0.1


def start_in_noise_units(model_sampling, recorder, i):
    """Pass i's starting latent (what the sampler makes of its NOISE at its first sigma) in noise units: later
    passes start at the re-noise sigma, so the NOISE itself is scaled for that start."""
    core = harness.pack_module("nodes.algo.freeinit")
    sampling = harness.pack_module("nodes.comfy_glue.sampling")
    noise, first_sigma = recorder.noises[i].double(), float(recorder.sigmas[i][0])
    start = noise * sampling.noise_unit(model_sampling, first_sigma, noise).double()
    kind = sampling.parameterisation(model_sampling)
    return start / core.latent_from_noise_units(torch.ones(1, dtype=torch.float64), first_sigma, kind)


def test_two_fresh_seeds_differ_only_in_the_high_band(models):
    spectral = harness.pack_module("nodes.algo.spectral")
    model = models("wan21")
    lpf = lpf_node("ideal", 0.5, 0.6)[0]
    previous = {"samples": small_latent("wan21", seed=3)["samples"]}
    make = lambda seed: harness.call_node("FADE_FreeInitNoiseReinit", model=model, latent=previous, filter=lpf,
                                          noise_seed=5, fresh_seed=seed, renoise_sigma=0.0)[0]
    empty = small_latent("wan21")
    a, b = make(6).generate_noise(empty).double(), make(7).generate_noise(empty).double()
    diff = a - b
    assert spectral.lowpass(diff, lpf).abs().max().item() < 1e-5
    assert (diff - spectral.lowpass(diff, lpf)).abs().max().item() > 0.5
    torch.testing.assert_close(make(6).generate_noise(empty), make(6).generate_noise(empty))   # reproducible


def test_reinit_node_matches_the_freeinit_model_patch(models):
    """Chaining passes by hand with FreeInit Noise Reinit gives the FreeInit node's second re-initialisation
    exactly (in noise units: the node's NOISE is for a full schedule, the FreeInit pass starts at the re-noise
    sigma)."""
    model = models("wan21")
    lpf = lpf_node("gaussian", 0.3, 0.3)[0]
    patched, recorder = recorded(freeinit(model, passes=2, lpf=lpf))
    latent = small_latent("wan21")
    pos, neg = tm.conditioning("wan21", 1), tm.conditioning("wan21", 2)
    seed = 21
    tm.sample(patched, latent, pos, neg, steps=STEPS, seed=seed)
    first_pass = tm.latent_format("wan21").process_out(recorder.results[0])
    noise = harness.call_node("FADE_FreeInitNoiseReinit", model=model, latent={"samples": first_pass}, filter=lpf,
                              noise_seed=seed, fresh_seed=seed + 1, renoise_sigma=0.0)[0]
    ms = model.get_model_object("model_sampling")
    torch.testing.assert_close(noise.generate_noise(latent).double(), start_in_noise_units(ms, recorder, 1),
                               atol=1e-5, rtol=0)


def test_renoise_default_keeps_the_papers_signal_fraction(models):
    renoise = harness.pack_module("nodes.freeinit.renoise")
    core = harness.pack_module("nodes.algo.freeinit")
    wan = models("wan21").get_model_object("model_sampling")
    sd = models("sd15").get_model_object("model_sampling")
    assert renoise.default_renoise_sigma(wan) == pytest.approx(0.93596, abs=1e-5)
    assert renoise.default_renoise_sigma(sd) == pytest.approx(14.6146, rel=1e-4)
    # same signal-to-noise ratio: (1 - s) / s == 1 / sigma_SD
    s = renoise.default_renoise_sigma(wan)
    assert (1 - s) / s == pytest.approx(1 / renoise.default_renoise_sigma(sd), rel=1e-4)
    assert core.signal_fraction(renoise.default_renoise_sigma(sd), core.VARIANCE_EXPLODING) == pytest.approx(0.0683,
                                                                                                      abs=1e-3)


# ----------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_errors_that_say_what_to_change(models):
    model = models("wan21")
    lpf = lpf_node()[0]
    with pytest.raises(ValueError, match="video latent"):
        harness.call_node("FADE_FreeInitNoiseReinit", model=model, latent={"samples": torch.zeros(16, 8, 8)},
                          filter=lpf, noise_seed=0, fresh_seed=1, renoise_sigma=0.0)
    with pytest.raises(ValueError, match="at least 2"):
        harness.call_node("FADE_FreeInitNoiseReinit", model=model, latent=tm.latent("wan21", 1, 32, 32),
                          filter=lpf, noise_seed=0, fresh_seed=1, renoise_sigma=0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lpf_node("gaussian", 1.5, 0.25)
    with pytest.raises(ValueError, match="flow-matching maximum"):
        freeinit(model, renoise_sigma=2.0)
    patched = freeinit(model, passes=2)
    with pytest.raises(ValueError, match="at least 2"):
        tm.sample(patched, tm.latent("wan21", 1, 32, 32), tm.conditioning("wan21", 1), tm.conditioning("wan21", 2),
                  steps=2)


def test_unknown_sampling_type_is_rejected(models):
    import comfy.model_sampling as ms_mod

    class UnknownSampling(ms_mod.ModelSamplingDiscrete):
        pass

    odd = models("sd15").clone()
    odd.add_object_patch("model_sampling", UnknownSampling())
    with pytest.raises(ValueError, match="unknown sampling type"):
        freeinit(odd)


def test_inputs_are_not_mutated_and_nothing_stays_patched_after_an_interrupt(models):
    import comfy.model_management as mm
    import comfy.patcher_extension as pe
    model = models("wan21")
    wrappers_before = {k: {kk: list(vv) for kk, vv in v.items()} for k, v in model.wrappers.items()}
    latent = small_latent("wan21")
    samples_before = latent["samples"].clone()
    pos, neg = tm.conditioning("wan21", 1), tm.conditioning("wan21", 2)
    before = tm.sample(model, latent, pos, neg, steps=STEPS, seed=2)
    patched = freeinit(model, passes=3)

    calls = {"n": 0}

    def interrupt_in_second_pass(executor, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            mm.interrupt_current_processing(True)
        return executor(*args, **kwargs)

    patched.add_wrapper_with_key(pe.WrappersMP.SAMPLER_SAMPLE, "fadetest_interrupt", interrupt_in_second_pass)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            tm.sample(patched, latent, pos, neg, steps=STEPS, seed=2)
    finally:
        mm.interrupt_current_processing(False)
    assert calls["n"] == 2
    assert {k: {kk: list(vv) for kk, vv in v.items()} for k, v in model.wrappers.items()} == wrappers_before
    assert torch.equal(latent["samples"], samples_before)
    assert torch.equal(tm.sample(model, latent, pos, neg, steps=STEPS, seed=2), before)
