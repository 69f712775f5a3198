"""Guard rails (issue 10): a catalogue of bad inputs run through ComfyUI's real executor. Each must end in a
clear error naming what to change (or, for stacking and extreme seeds, the documented behaviour), and the next
good run on the same executor (same cached MODEL objects) must be bit-identical to the one before any bad input.
"""
import copy

import pytest
import torch

import harness
import tiny_models as tm

pytestmark = pytest.mark.host

MAX_SEED = 2**64 - 1
STEPS = 2


def good_prompt(unet):
    """FreeInit text-to-video (KSampler) and a FADE edit of its result (DDIM Invert, guide, Modulated DDIM)."""
    p = {
        "m0": ("UNETLoader", {"unet_name": unet, "weight_dtype": "default"}),
        "m": ("FADETEST_Fresh", {"value": ["m0", 0]}),   # never cached: all below re-executes, the MODEL is reused
        "pos": ("FADETEST_TextConditioning", {"family": "wan21", "text": "a red fox", "seed": 0}),
        "neg": ("FADETEST_TextConditioning", {"family": "wan21", "text": "", "seed": 0}),
        "src": ("FADETEST_TextConditioning", {"family": "wan21", "text": "a fox", "seed": 0}),
        "lat": ("EmptyHunyuanLatentVideo", {"width": 32, "height": 32, "length": 5, "batch_size": 1}),
        "fi": ("FADE_FreeInit", {"model": ["m", 0], "passes": 2, "renoise_sigma": 0.0, "coarse_to_fine": False}),
        "ks": ("KSampler", {"model": ["fi", 0], "seed": 7, "steps": STEPS, "cfg": 2.0, "sampler_name": "euler",
                            "scheduler": "simple", "positive": ["pos", 0], "negative": ["neg", 0],
                            "latent_image": ["lat", 0], "denoise": 1.0}),
        "sig": ("BasicScheduler", {"model": ["m", 0], "scheduler": "simple", "steps": STEPS, "denoise": 1.0}),
        "inv": ("FADE_DDIMInvert", {"model": ["m", 0], "conditioning": ["neg", 0], "latent": ["ks", 0],
                                    "sigmas": ["sig", 0], "cfg": 1.0, "refine": 0}),
        "lpf": ("FADE_GaussianLPF3D", {"filter_type": "box", "spatial_cutoff": 0.67, "temporal_cutoff": 1.0,
                                       "butterworth_order": 4}),
        "guide": ("FADE_SketchSpectrumGuide", {
            "model": ["m", 0], "trajectory": ["inv", 1], "source_conditioning": ["src", 0], "filter": ["lpf", 0],
            "sketch_blocks": 2, "strength": 1.0, "guided_fraction": 1.0, "feature": "attention", "spectrum": "2d",
            "normalisation": "unit", "ratio_min": 0.33, "ratio_max": 3.0}),
        "cfgg": ("CFGGuider", {"model": ["guide", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": 2.0}),
        "mdd": ("FADE_ModulatedDDIMSampler", {"blend_fraction": 0.7}),
        "edit": ("SamplerCustomAdvanced", {"noise": ["inv", 0], "guider": ["cfgg", 0], "sampler": ["mdd", 0],
                                           "sigmas": ["sig", 0], "latent_image": ["ks", 0]}),
        "out1": ("FADETEST_Sink", {"value": ["ks", 0]}),
        "out2": ("FADETEST_Sink", {"value": ["edit", 0]}),
    }
    return {k: {"class_type": c, "inputs": dict(i)} for k, (c, i) in p.items()}


def add(prompt, node_id, class_type, **inputs):
    prompt[node_id] = {"class_type": class_type, "inputs": inputs}


def sink(prompt, value):
    add(prompt, "bad_out", "FADETEST_Sink", value=value)


def only(prompt, *keep):
    """The prompt reduced to what `keep` (node ids) need, so a case runs only the part it tests; a kept node
    that is not an output gets a sink."""
    keep = list(keep)
    if len(keep) == 1 and prompt[keep[0]]["class_type"] != "FADETEST_Sink":
        add(prompt, "bad_out", "FADETEST_Sink", value=[keep[0], 0])
        keep = ["bad_out"]
    needed, todo = set(), list(keep)
    while todo:
        k = todo.pop()
        if k in needed:
            continue
        needed.add(k)
        todo += [v[0] for v in prompt[k]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    for k in list(prompt):
        if k not in needed:
            del prompt[k]
    return prompt


# ------------------------------------------------------------------------------------------------ the catalogue
def _corrupt(p, mode, target, field, what_in="lat"):
    add(p, "bad", "FADETEST_CorruptLatent", latent=[what_in, 0], mode=mode)
    p[target]["inputs"][field] = ["bad", 0]


def _custom_freeinit(p, sigmas=None, noise=None):
    """SamplerCustomAdvanced on the FreeInit MODEL (the path taking NOISE and SIGMAS objects)."""
    add(p, "rn", "RandomNoise", noise_seed=3)
    add(p, "g", "CFGGuider", model=["fi", 0], positive=["pos", 0], negative=["neg", 0], cfg=2.0)
    add(p, "eul", "KSamplerSelect", sampler_name="euler")
    add(p, "sca", "SamplerCustomAdvanced", noise=noise or ["rn", 0], guider=["g", 0], sampler=["eul", 0],
        sigmas=sigmas or ["sig", 0], latent_image=["lat", 0])
    sink(p, ["sca", 0])


def _reinit(p, latent, **over):
    inputs = dict(model=["m", 0], latent=latent, filter=["lpf", 0], noise_seed=7, fresh_seed=8, renoise_sigma=0.0)
    inputs.update(over)
    add(p, "ri", "FADE_FreeInitNoiseReinit", **inputs)


def _reinit_sampled(p, latent_image=None):
    add(p, "g", "CFGGuider", model=["m", 0], positive=["pos", 0], negative=["neg", 0], cfg=2.0)
    add(p, "eul", "KSamplerSelect", sampler_name="euler")
    add(p, "sca", "SamplerCustomAdvanced", noise=["ri", 0], guider=["g", 0], sampler=["eul", 0],
        sigmas=["sig", 0], latent_image=latent_image or ["lat", 0])
    sink(p, ["sca", 0])


def _karras(p, sigma_max=14.6):
    add(p, "kar", "KarrasScheduler", steps=STEPS, sigma_max=sigma_max, sigma_min=0.03, rho=7.0)
    return ["kar", 0]


def _split_high(p):
    add(p, "split", "SplitSigmas", sigmas=["sig", 0], step=1)
    return ["split", 0]


def case(name, build, expect):
    return pytest.param(build, expect, id=name)


NON_FINITE = "contains non-finite values"
FRAME_BATCH = "4-D batch of frames on a video model"


def c_freeinit_latent(mode):
    def build(p):
        _corrupt(p, mode, "ks", "latent_image")
        return only(p, "ks")
    return build


def c_freeinit_noise(mode):
    def build(p):
        add(p, "rn0", "RandomNoise", noise_seed=3)
        add(p, "badn", "FADETEST_CorruptNoise", noise=["rn0", 0], mode=mode)
        _custom_freeinit(p, noise=["badn", 0])
        return only(p, "bad_out")
    return build


def c_freeinit_channels(p):
    _corrupt(p, "channels", "ks", "latent_image")
    return only(p, "ks")


def c_freeinit_frame_batch(p):
    p["ks2"] = copy.deepcopy(p["ks"])      # a frame batch of a real (non-empty) video latent
    _corrupt(p, "frame_batch", "ks2", "latent_image", what_in="ks")
    return only(p, "ks2")


def c_freeinit_one_frame(p):
    p["lat"]["inputs"]["length"] = 1
    return only(p, "ks")


def c_ksampler_advanced_leftover(p):
    add(p, "ksa", "KSamplerAdvanced", model=["fi", 0], add_noise="enable", noise_seed=7, steps=STEPS, cfg=2.0,
        sampler_name="euler", scheduler="simple", positive=["pos", 0], negative=["neg", 0],
        latent_image=["lat", 0], start_at_step=0, end_at_step=1, return_with_leftover_noise="enable")
    sink(p, ["ksa", 0])
    return only(p, "bad_out")


def c_split_sigmas_high(p):
    _custom_freeinit(p, sigmas=_split_high(p))
    return only(p, "bad_out")


def c_karras_on_flow_freeinit(p):
    _custom_freeinit(p, sigmas=_karras(p))
    return only(p, "bad_out")


def c_renoise_above_flow_max(p):
    p["fi"]["inputs"]["renoise_sigma"] = 2.0
    return only(p, "fi")


def c_reinit_latent(mode):
    def build(p):
        _reinit(p, ["ks", 0])
        _corrupt(p, mode, "ri", "latent", what_in="ks")
        return only(p, "ri")
    return build


def c_reinit_frame_batch(p):
    _reinit(p, ["ks", 0])
    _corrupt(p, "frame_batch", "ri", "latent", what_in="ks")
    return only(p, "ri")


def c_reinit_one_frame(p):
    p["lat"]["inputs"]["length"] = 1
    _reinit(p, ["ks", 0])
    return only(p, "ri")


def c_reinit_other_latent(p):
    add(p, "lat2", "EmptyHunyuanLatentVideo", width=48, height=32, length=5, batch_size=1)
    _reinit(p, ["ks", 0])
    _reinit_sampled(p, latent_image=["lat2", 0])
    return only(p, "bad_out")


def c_invert_latent(mode):
    def build(p):
        _corrupt(p, mode, "inv", "latent", what_in="ks")
        return only(p, "inv")
    return build


def c_invert_frame_batch(p):
    _corrupt(p, "frame_batch", "inv", "latent", what_in="ks")
    return only(p, "inv")


def c_invert_empty(p):
    p["inv"]["inputs"]["latent"] = ["lat", 0]
    return only(p, "inv")


def c_invert_karras(p):
    p["inv"]["inputs"]["sigmas"] = _karras(p)
    return only(p, "inv")


def c_invert_flipped(p):
    add(p, "flip", "FlipSigmas", sigmas=["sig", 0])
    p["inv"]["inputs"]["sigmas"] = ["flip", 0]
    return only(p, "inv")


def c_invert_partial(p):
    p["inv"]["inputs"]["sigmas"] = _split_high(p)
    return only(p, "inv")


def c_invert_cfg_without_negative(p):
    p["inv"]["inputs"]["cfg"] = 2.0
    return only(p, "inv")


def c_edit_nan_latent(p):
    _corrupt(p, "nan", "edit", "latent_image", what_in="ks")
    return only(p, "edit")


def c_edit_other_latent(p):
    add(p, "lat2", "EmptyHunyuanLatentVideo", width=48, height=32, length=5, batch_size=1)
    p["edit"]["inputs"]["latent_image"] = ["lat2", 0]
    return only(p, "edit")


def c_edit_other_schedule(p):
    add(p, "sig3", "BasicScheduler", model=["m", 0], scheduler="simple", steps=STEPS + 1, denoise=1.0)
    p["edit"]["inputs"]["sigmas"] = ["sig3", 0]
    return only(p, "edit")


def c_guide_too_many_blocks(p):
    p["guide"]["inputs"]["sketch_blocks"] = 64
    return only(p, "guide")


def c_guide_ratio_order(p):
    p["guide"]["inputs"].update(normalisation="cfg-relative", ratio_min=3.0, ratio_max=0.5)
    return only(p, "guide")


def c_mask(mode):
    def build(p):
        add(p, "mask", "SolidMask", value=1.0, width=32, height=32)
        add(p, "badm", "FADETEST_CorruptMask", mask=["mask", 0], mode=mode)
        p["mdd"]["inputs"]["mask"] = ["badm", 0]
        return only(p, "edit")
    return build


def c_mask_without_guide(p):
    add(p, "mask", "SolidMask", value=1.0, width=32, height=32)
    p["mdd"]["inputs"]["mask"] = ["mask", 0]
    p["cfgg"]["inputs"]["model"] = ["m", 0]
    return only(p, "edit")


def c_trajectory_other_format(p):
    add(p, "m5", "UNETLoader", unet_name=tm.write_unet("wan22_5b"), weight_dtype="default")
    p["guide"]["inputs"]["model"] = ["m5", 0]
    return only(p, "guide")


def c_eps_karras_above_range(p):
    sd = tm.write_unet("sd15")
    add(p, "msd", "UNETLoader", unet_name=sd, weight_dtype="default")
    add(p, "fisd", "FADE_FreeInit", model=["msd", 0], passes=2, renoise_sigma=0.0, coarse_to_fine=False)
    add(p, "psd", "FADETEST_TextConditioning", family="sd15", text="x", seed=0)
    add(p, "latsd", "EmptyLatentImage", width=32, height=32, batch_size=2)
    add(p, "rn", "RandomNoise", noise_seed=3)
    add(p, "g", "BasicGuider", model=["fisd", 0], conditioning=["psd", 0])
    add(p, "eul", "KSamplerSelect", sampler_name="euler")
    add(p, "sca", "SamplerCustomAdvanced", noise=["rn", 0], guider=["g", 0], sampler=["eul", 0],
        sigmas=_karras(p, sigma_max=100.0), latent_image=["latsd", 0])
    sink(p, ["sca", 0])
    return only(p, "bad_out")


ERRORS = [
    case("freeinit-nan-latent", c_freeinit_latent("nan"), "latent being sampled " + NON_FINITE),
    case("freeinit-inf-latent", c_freeinit_latent("inf"), "latent being sampled " + NON_FINITE),
    case("freeinit-nan-noise", c_freeinit_noise("nan"), "the noise " + NON_FINITE),
    case("freeinit-inf-noise", c_freeinit_noise("inf"), "the noise " + NON_FINITE),
    case("freeinit-wrong-channels", c_freeinit_channels, "latent format Wan21 has 16 channels"),
    case("freeinit-frame-batch-on-video-model", c_freeinit_frame_batch, FRAME_BATCH),
    case("freeinit-one-frame", c_freeinit_one_frame, "needs at least 2"),
    case("freeinit-ksampleradvanced-leftover-noise", c_ksampler_advanced_leftover, "ends at sigma 0"),
    case("freeinit-splitsigmas-high-part", c_split_sigmas_high, "sample the whole schedule in one sampler"),
    case("freeinit-karras-on-flow-model", c_karras_on_flow_freeinit, "Use BasicScheduler"),
    case("freeinit-renoise-above-flow-max", c_renoise_above_flow_max, "flow-matching maximum"),
    case("freeinit-eps-sigmas-above-sigma-max", c_eps_karras_above_range, "outside this noise-prediction model"),
    case("reinit-nan-latent", c_reinit_latent("nan"), "previous pass's latent " + NON_FINITE),
    case("reinit-inf-latent", c_reinit_latent("inf"), "previous pass's latent " + NON_FINITE),
    case("reinit-wrong-channels", c_reinit_latent("channels"), "has 16 channels"),
    case("reinit-frame-batch-on-video-model", c_reinit_frame_batch, FRAME_BATCH),
    case("reinit-one-frame", c_reinit_one_frame, "needs at least 2"),
    case("reinit-other-latent", c_reinit_other_latent, "connect the same"),
    case("invert-nan-source", c_invert_latent("nan"), "latent " + NON_FINITE),
    case("invert-inf-source", c_invert_latent("inf"), "latent " + NON_FINITE),
    case("invert-wrong-channels", c_invert_latent("channels"), "has 16 channels"),
    case("invert-frame-batch", c_invert_frame_batch, "native video latents"),
    case("invert-empty-latent", c_invert_empty, "the latent is empty"),
    case("invert-karras-on-flow-model", c_invert_karras, "Use BasicScheduler"),
    case("invert-flipped-sigmas", c_invert_flipped, "strictly descending"),
    case("invert-partial-sigmas", c_invert_partial, "connect a schedule that ends at 0"),
    case("invert-cfg-without-negative", c_invert_cfg_without_negative, "connect 'negative'"),
    case("edit-nan-latent", c_edit_nan_latent, "latent being sampled " + NON_FINITE),
    case("edit-other-latent", c_edit_other_latent, "trajectory was inverted from a latent of shape"),
    case("edit-other-schedule", c_edit_other_schedule, "not the schedule DDIM Invert used"),
    case("guide-too-many-blocks", c_guide_too_many_blocks, "lower sketch_blocks"),
    case("guide-ratio-order", c_guide_ratio_order, "is above ratio_max"),
    case("guide-trajectory-other-latent-format", c_trajectory_other_format, "run DDIM Invert with the model"),
    case("mask-nan", c_mask("nan"), "the mask " + NON_FINITE),
    case("mask-inf", c_mask("inf"), "the mask " + NON_FINITE),
    case("mask-without-guide", c_mask_without_guide, "disconnect the mask"),
]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def rig(comfy):
    """One executor for the whole catalogue, the good prompt and its outputs before any bad input."""
    unet = tm.write_unet("wan21")
    executor = harness.new_executor()
    good = good_prompt(unet)
    res = harness.run_prompt(good, executor=executor)
    reference = {k: res.output(k)["samples"].clone() for k in ("ks", "edit")}
    assert all(torch.isfinite(v).all() for v in reference.values())
    return {"executor": executor, "good": good, "reference": reference}


def assert_good_run_unchanged(rig):
    res = harness.run_prompt(rig["good"], executor=rig["executor"])
    for k, want in rig["reference"].items():
        assert torch.equal(res.output(k)["samples"], want), f"good run's {k} changed after a bad input"


def error_of(rig, prompt):
    res = harness.run_prompt(prompt, executor=rig["executor"], check=False)
    assert not res.success and res.error is not None, "the bad input ran without an error"
    return res.error


@pytest.mark.parametrize("build, expect", ERRORS)
def test_bad_input_gets_a_clear_error(rig, build, expect):
    prompt = build(copy.deepcopy(rig["good"]))
    error = error_of(rig, prompt)
    message = error.get("exception_message", "")
    assert error.get("exception_type", "").endswith("ValueError"), message
    assert expect in message, message
    assert "different latent" not in message or "different latent" in expect
    assert_good_run_unchanged(rig)


# ------------------------------------------------------------------------------------------------ documented cases
def test_largest_seed_runs_and_is_reproducible(rig):
    p = only(copy.deepcopy(rig["good"]), "ks")
    p["ks"]["inputs"]["seed"] = MAX_SEED
    a = harness.run_prompt(p, executor=rig["executor"]).output("ks")["samples"]
    b = harness.run_prompt(p, executor=rig["executor"]).output("ks")["samples"]
    assert torch.isfinite(a).all() and torch.equal(a, b)
    assert not torch.equal(a, rig["reference"]["ks"])
    assert_good_run_unchanged(rig)


def test_pass_seeds_wrap_modulo_2_64_and_stay_seed_plus_index(comfy):
    validation = harness.pack_module("nodes.comfy_glue.validation")
    assert [validation.pass_seed(5, i) for i in range(3)] == [5, 6, 7]
    assert [validation.pass_seed(MAX_SEED, i) for i in range(3)] == [MAX_SEED, 0, 1]
    assert validation.pass_seed(None, 2) == 2


def test_reinit_takes_the_largest_seeds(rig):
    p = copy.deepcopy(rig["good"])
    _reinit(p, ["ks", 0], noise_seed=MAX_SEED, fresh_seed=MAX_SEED)
    _reinit_sampled(p)
    out = harness.run_prompt(only(p, "bad_out"), executor=rig["executor"]).output("sca")
    assert torch.isfinite(out["samples"]).all()
    assert_good_run_unchanged(rig)


def test_second_freeinit_replaces_the_first(rig):
    p = only(copy.deepcopy(rig["good"]), "ks")
    add(p, "fi0", "FADE_FreeInit", model=["m", 0], passes=3, renoise_sigma=0.5, coarse_to_fine=True)
    p["fi"]["inputs"]["model"] = ["fi0", 0]
    res = harness.run_prompt(p, executor=rig["executor"])
    assert torch.equal(res.output("ks")["samples"], rig["reference"]["ks"])   # exactly the second's settings
    assert len(res.progress("ks")) == 2 * STEPS                                 # 2 passes, not 3 x 2
    assert_good_run_unchanged(rig)


def test_second_guide_replaces_the_first(rig):
    p = only(copy.deepcopy(rig["good"]), "edit")
    first = copy.deepcopy(p["guide"])
    first["inputs"].update(strength=7.0, sketch_blocks=1)
    p["guide0"] = first
    p["guide"]["inputs"]["model"] = ["guide0", 0]
    res = harness.run_prompt(p, executor=rig["executor"])
    assert torch.equal(res.output("edit")["samples"], rig["reference"]["edit"])
    assert_good_run_unchanged(rig)


def test_catalogue_is_at_least_30_bad_inputs():
    assert len(ERRORS) + 3 >= 30


@pytest.mark.parametrize("refine", [0, 2])
def test_ddim_invert_progress_counts_every_pass(comfy, refine):
    """One bar over everything DDIM Invert runs: the inversion (1 + refine calls a step), the round trip that checks
    a refined one (1 a step) and, where that trip misses the source by over 1 %, plain DDIM and its round trip."""
    prompt = good_prompt(tm.write_unet("wan21"))
    prompt["inv"]["inputs"]["refine"] = refine
    res = harness.run_prompt(only(prompt, "inv"))
    report = res.output("inv", 1).report
    compared = report.plain_error is not None
    assert (report.refined_error is not None) == (refine > 0)
    # the tiny random model's 2-step round trip misses by more than 1 % (refined 7.9 %, plain 36 %): compared
    assert compared == (refine > 0)
    want = STEPS * (1 + refine) + (STEPS if refine else 0) + (2 * STEPS if compared else 0)
    events = [(d["value"], d["max"]) for d in res.progress("inv")]
    assert events[-1] == (want, want)
    assert [v for v, _ in events] == sorted(v for v, _ in events)      # never runs backwards
    if compared:
        assert report.used_plain == [False] and report.summary().startswith("DDIM Invert round trip")
