"""Efficacy on the committed tiny Wan 2.1 model trained on synthetic clips (bench/efficacy/): the direction and
rough size of each effect the benchmark measured, with margins that held across seeds, so a regression in what
the methods achieve (not only in whether they run) fails here. A small slice of bench/efficacy/run.py.
"""
import importlib.util
import json
from pathlib import Path

import pytest

import harness

EFFICACY_DIR = harness.REPO_ROOT / "bench" / "efficacy"
CHECKPOINT = EFFICACY_DIR / "model" / "tiny_wan_shapes.safetensors"

pytestmark = pytest.mark.skipif(not CHECKPOINT.is_file(), reason=f"no efficacy fixture at {CHECKPOINT}")


def _load(script):
    """bench/efficacy/<script>.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"efficacy_{script}", EFFICACY_DIR / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def eff(comfy):
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    run = _load("run")
    env = run.Env(CHECKPOINT)
    yield run, env
    torch.set_num_threads(threads)


def test_fixture_loads_through_comfyui_detection(eff):
    run, env = eff
    meta = json.loads(CHECKPOINT.with_suffix(".json").read_text())
    assert env.model_class == "WAN21"
    assert CHECKPOINT.stat().st_size < 6 * 2 ** 20
    assert env.model.model.diffusion_model.dim == meta["config"]["dim"]
    assert len(env.model.model.diffusion_model.blocks) == meta["config"]["num_layers"]


def test_refine_reconstructs_far_better_than_plain_inversion(eff):
    run, env = eff
    table = run.section_inversion(env, run.sources(2, seed=21), [20], [0, 6])
    # measured on 6 clips at 20 steps: refine 0 32.5 dB, refine 6 (the default) 54.0 dB (worst clip 53.0);
    # refine 4, the earlier default, 48.0 dB (46.9 with a worst clip of 24.9 before the round-trip check)
    assert table["20x6"]["psnr_min"] >= table["20x0"]["psnr"] + 15.0
    assert table["20x6"]["psnr_min"] >= 45.0


CANDIDATE = EFFICACY_DIR / "candidate" / "tiny_wan_shapes_9block.safetensors"


@pytest.mark.skipif(not CANDIDATE.is_file(), reason=f"no candidate model at {CANDIDATE}")
def test_refining_never_round_trips_worse_than_plain_inversion(eff):
    """On the 9-block candidate the exact-step inverse drifts where that model is unstable: before the round-trip
    check, refine 6 rebuilt the benchmark's second clip with a 46 % latent error (under 20 dB) where plain DDIM
    holds 6 % (33.6 dB). The check keeps plain DDIM for such items."""
    run, _ = eff
    env = run.Env(CANDIDATE)
    table = run.section_inversion(env, run.sources(12, seed=7)[1:2], [20], [0, 6])
    assert table["20x6"]["plain_kept"] >= 1                 # the check fired on this model
    assert table["20x6"]["psnr_min"] >= table["20x0"]["psnr_min"] - 0.5
    assert table["20x6"]["psnr"] >= table["20x0"]["psnr"] - 0.5


def test_fade_halves_the_trajectory_error_of_a_plain_inverted_edit(eff):
    # Measured on the benchmark's 12 sources (default settings: unit, strength 1, K 4; inverted with refine 6):
    # trajectory error 6.13 px plain, 1.03 px with FADE; edit success (new colour, IoU >= 0.5) 0.33 plain, 0.92
    # with FADE (the phase-2 model: 5.17 / 0.90 px, 0.25 / 1.00). The slice takes 8 sources (every colour x both
    # shapes; two thirds of the time of 12): over source seeds 7-12 the FADE / plain trajectory error was
    # 0.11-0.24, FADE's success 0.88-1.00 and its gain over the plain edit +0.38 to +0.76 (one source is 0.125).
    run, env = eff
    got = run.fade_batch(env, run.sources(8, seed=7), run.INVERT_REFINE,
                         [("plain inverted", None), ("fade", run.FADE_DEFAULT)])
    plain, fade = got["plain inverted"], got["fade"]
    assert fade["traj_err"] <= 0.5 * plain["traj_err"]
    assert fade["success"] >= 0.75
    assert fade["success"] >= plain["success"] + 0.25
    assert fade["colour_ok"] >= 0.75
    assert fade["bg_psnr"] >= plain["bg_psnr"] - 3.0


def test_freeinit_default_stays_within_the_drift_guards(eff):
    # Measured on 16 samples: object area vs pass 1 x0.93, saturated pixels 0.02 % (1 pass) and 0.01 %, no
    # background off-range. On the first fixture, before later passes started at their re-noise sigma, the area
    # grew x1.45 and saturation doubled.
    run, env = eff
    prompts = [("red", "square"), ("blue", "disc")]
    table, _ = run.section_freeinit(env, prompts, [5, 6], quick=True)
    one, three = table["1 pass"], table["3 passes gaussian (default)"]
    assert 0.55 <= three["area_vs_pass1"] <= 1.25
    assert three["saturated"] <= one["saturated"] + 0.002
    assert three["bg_out"] <= one["bg_out"] + 0.25
    assert three["colour_ok"] >= 0.75


def test_growing_the_model_deeper_keeps_its_function(comfy, monkeypatch):
    """train.py --layers: a saved 2-block model grown to 4 blocks computes the same velocity (old blocks at
    0 and 2, identity blocks at 1 and 3), so a deeper training phase resumes from the fixture, not from scratch."""
    import comfy.cli_args
    import torch
    monkeypatch.setattr(comfy.cli_args.args, "cpu", comfy.cli_args.args.cpu)    # build() sets it
    train = _load("train")
    monkeypatch.setitem(train.CONFIG, "num_layers", 2)
    small = train.build(0)
    with torch.no_grad():
        small.head.head.weight.normal_(0, 0.05)     # build() starts the head at zero: the output would be 0
    monkeypatch.setitem(train.CONFIG, "num_layers", 4)
    big = train.build(1)
    big.load_state_dict(train.grow(small.state_dict(), big))
    assert torch.equal(big.blocks[2].ffn[0].weight, small.blocks[1].ffn[0].weight)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 5, 16, 16, generator=g)
    ctx = torch.randn(1, 2, 4096, generator=g)
    t = torch.tensor([500.0])
    with torch.no_grad():
        want, got = small(x, t, ctx), big(x, t, ctx)
        fresh = train.build(1)
        fresh.head.head.weight.copy_(small.head.head.weight)
        other = fresh(x, t, ctx)
    assert want.abs().mean() > 1e-3
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    assert (other - want).abs().max() > 1e-2 * want.abs().max()     # a 4-block model not grown differs
    with pytest.raises(SystemExit, match="only growing"):
        train.grow(big.state_dict(), small)


def test_focused_training_sigmas_move_the_share_asked_for(comfy, monkeypatch):
    """train.py --focus-fraction: that share of the sigmas lands in [--focus-sigma, 1], the rest keeps the usual
    uniform + shifted mix, and 0 leaves the draws as they were."""
    import comfy.cli_args
    import comfy.model_sampling
    import torch
    monkeypatch.setattr(comfy.cli_args.args, "cpu", comfy.cli_args.args.cpu)
    train = _load("train")
    ms = comfy.model_sampling.ModelSamplingDiscreteFlow()
    ms.set_parameters(shift=train.TRAIN_SHIFT, multiplier=1000)
    n = 20000

    def draw(**kw):
        return train.training_sigmas(torch.Generator().manual_seed(0), n, ms, **kw)

    usual, focused = draw(), draw(focus_sigma=0.85, focus_fraction=0.5)
    assert 0.0 < float(usual.min()) and float(usual.max()) <= 1.0
    usual_share = float((usual >= 0.85).float().mean())
    assert 0.2 <= usual_share <= 0.3          # uniform 0.15 and shift-3 0.35, half each
    assert abs(float((focused >= 0.85).float().mean()) - (0.5 + 0.5 * usual_share)) <= 0.02
    assert torch.equal(draw(focus_fraction=0.0), usual)


@pytest.mark.skipif(not CANDIDATE.is_file(), reason=f"no candidate model at {CANDIDATE}")
def test_a_gpu_round_training_run_saves_weights_comfyui_loads(comfy, monkeypatch, tmp_path):
    """train.py as gpu_round.sh runs it (batched data, --out-dir, a warm start), on --device cpu for one step, on
    every host (v0.8+'s comfy-kitchen RoPE has no backward of its own): the save is a diffusion model ComfyUI's own
    loader detects as Wan 2.1, with the run's settings recorded."""
    import comfy.cli_args
    import comfy.model_management
    import comfy.sd
    import comfy.utils
    import torch
    monkeypatch.setattr(comfy.cli_args.args, "cpu", comfy.cli_args.args.cpu)
    if hasattr(comfy.model_management, "in_training"):     # differentiable_host() sets ComfyUI's training switch
        monkeypatch.setattr(comfy.model_management, "in_training", comfy.model_management.in_training)
    train = _load("train")
    monkeypatch.setattr("sys.argv", ["train.py", "--device", "cpu", "--data", "batched", "--batch", "2",
                                     "--minutes", "0.001", "--init", str(CANDIDATE), "--layers", "9",
                                     "--name", "round", "--out-dir", str(tmp_path), "--threads", "2"])
    threads = torch.get_num_threads()
    try:
        train.main()
    finally:
        torch.set_num_threads(threads)
    meta = json.loads((tmp_path / "round.json").read_text())
    assert meta["step"] >= 1 and meta["data"] == "batched" and meta["device"] == "cpu"
    sd = comfy.utils.load_torch_file(str(tmp_path / "round.safetensors"))
    model = comfy.sd.load_diffusion_model_state_dict(sd)
    assert type(model.model).__name__ == "WAN21" and len(model.model.diffusion_model.blocks) == 9
    assert (tmp_path / "round.log").read_text().rstrip().endswith(f"done step {meta['step']}")
