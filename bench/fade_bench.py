"""Benchmark for FADE (guided video editing) and FreeInit on random-weight Wan 2.1 models.

Runs inside an in-process ComfyUI (tests/host/harness.py loads the pack through ComfyUI's own loader) and builds
the diffusion model with ComfyUI's classes (supported_models.WAN21_T2V -> model_base.WAN21 -> WanModel, wrapped in
a ModelPatcher), so every step goes through the same guider, conditioning and model-management code as a real
graph. Measured in one run, variants interleaved within each repeat, medians over repeats:

  steps     plain CFG step vs guided FADE step (K = 1, 2, 4, 8; reference cache cold and warm; memory "fast"
            and "offload activations") vs a naive guided step (full forward + backward, source recomputed)
  edit      whole FADE edit (DDIM inversion + guided sampling) vs plain sampling with the same steps, and a
            re-run with another target prompt (trajectory and reference cache reused)
  freeinit  low-pass mask build (cold) and FreeInit re-initialisation on a Wan-sized latent vs a sampling pass

Writes OUT/bench.json and OUT/bench.md (a markdown table for the README) and prints the table.

    python bench/fade_bench.py --size tiny --out /tmp/fade_bench
    python bench/fade_bench.py --size wan1.3b --frames 81 --height 480 --width 832 --steps 10 --out out/
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import gc
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST_DIR = REPO_ROOT / "tests" / "host"

# Model presets (Wan 2.1 t2v layout; dim = 128 * heads as in the released models), their default clip and run
# length. wan1.3b's defaults keep an 81-frame run on one H200 well inside 10 minutes.
SIZES = {
    "tiny": dict(dim=128, heads=1, ffn=256, blocks=8, frames=9, height=64, width=64, steps=4, repeats=3,
                 edit_repeats=3, budget_s=None),
    # mid: narrow but as deep as Wan 1.3B, so K / blocks (what the guided-step ratio hangs on) is the real one
    "mid": dict(dim=256, heads=2, ffn=1536, blocks=30, frames=17, height=192, width=256, steps=5, repeats=3,
                edit_repeats=3, budget_s=None),
    "wan1.3b": dict(dim=1536, heads=12, ffn=8960, blocks=30, frames=81, height=480, width=832, steps=10,
                    repeats=2, edit_repeats=1, budget_s=480.0),
}
TEXT_TOKENS, TEXT_DIM = 512, 4096          # UMT5-XXL output as Wan's text encoder hands it over
LATENT_CHANNELS = 16
FREEINIT_GRID = (21, 60, 104)              # Wan 2.1 at 480x832, 81 frames
DEFAULT_KS = (1, 2, 4, 8)
REFERENCE_K = 4                            # the paper's K; targets, naive and offload variants use it

TARGETS = {
    "guided_step_k4": 1.3,        # guided / plain CFG step, Wan-1.3B shape
    "whole_edit": 1.7,            # inversion + guided sampling / plain sampling
    "freeinit_pass_pct": 0.5,     # FreeInit's own work, % of one sampling pass
    "mask_build_cpu_ms": 20.0,    # cold mask build on the CPU for 21 x 60 x 104
}

torch = None      # imported after ComfyUI is configured (its cli args must be set first)


def log(message):
    print(f"[fade_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- ComfyUI
def setup_comfyui(comfy_path=None, device="auto"):
    """Configure and bootstrap ComfyUI in-process (or reuse the one pytest's harness already set up)."""
    global torch
    if str(HOST_DIR) not in sys.path:
        sys.path.insert(0, str(HOST_DIR))
    import harness
    if comfy_path:
        os.environ["COMFYUI_PATH"] = str(comfy_path)
    if "comfy.model_management" not in sys.modules:
        _configure(harness, device)
    host = harness.bootstrap()
    import torch as _torch
    torch = _torch
    return harness, host


def _configure(harness, device):
    """harness.configure() without its forced CPU: the same path, torchvision and base-directory set-up, with the
    device left to ComfyUI's own detection unless --device cpu."""
    root, how = harness.find_comfyui()
    if root is None:
        raise SystemExit(f"no ComfyUI: {how}; pass --comfyui PATH or set COMFYUI_PATH")
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != root]
    sys.path.insert(0, str(root))
    for index, path in enumerate(harness.standin_paths()):
        sys.path.insert(1 + index, path)
    import torch as _torch
    base = Path(tempfile.mkdtemp(prefix="fade_bench_comfy_"))
    import atexit
    atexit.register(shutil.rmtree, base, ignore_errors=True)   # does not follow the custom_nodes symlinks
    from comfy.cli_args import args
    args.cpu = device == "cpu" or (device == "auto" and not _torch.cuda.is_available())
    args.base_directory = str(base)
    args.disable_api_nodes = True
    args.disable_auto_launch = True
    import folder_paths  # noqa: F401
    import comfy.model_management  # noqa: F401
    import utils.extra_config  # noqa: F401  (before nodes.py shadows `utils`, as in harness.configure)
    import utils.install_util  # noqa: F401
    harness._HOST = harness.Host(comfy_root=root, base_dir=base, found_by=how)


def comfyui_version(root):
    try:
        text = (Path(root) / "comfyui_version.py").read_text()
        return re.search(r"['\"]([^'\"]+)['\"]", text).group(1)
    except Exception:   # version file moved: the report just says unknown
        return "unknown"


# ----------------------------------------------------------------------------------------------- measuring
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


class Meter:
    """Wall time and peak memory of one call.

    CUDA: torch.cuda peak allocated (absolute, weights included) and its rise over the call's start.
    CPU (Linux): peak RSS (VmHWM, reset through /proc/self/clear_refs) and its rise over the RSS at the start,
    after gc and malloc_trim so freed memory of earlier variants is not reused unseen. Approximate: memory the
    allocator keeps between calls is not counted. Elsewhere CPU memory is n/a.
    """

    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.libc = _libc()
        self.rss = not self.cuda and self._rss_resettable()
        self.kind = ("cuda max_memory_allocated" if self.cuda else
                     "cpu peak RSS (VmHWM)" if self.rss else "n/a")

    @staticmethod
    def _status(field):
        with open("/proc/self/status") as f:
            match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
        return int(match.group(1)) * 1024

    def _rss_resettable(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return self._status("VmHWM") <= self._status("VmRSS") + (64 << 20)
        except OSError:
            return False

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def __call__(self, fn):
        """(seconds, peak bytes or None, peak rise bytes or None)."""
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        elif self.rss:
            if self.libc is not None:
                self.libc.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            base = self._status("VmRSS")
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        seconds = time.perf_counter() - t0
        del out
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.rss:
            peak = self._status("VmHWM")
        else:
            return seconds, None, None
        return seconds, peak, max(0, peak - base)


def _is_oom(error):
    return isinstance(error, getattr(torch, "OutOfMemoryError", ())) or "out of memory" in str(error).lower()


class Samples:
    """Repeated measurements per variant; failures (out of memory) are kept as the reason."""

    def __init__(self):
        self.data = {}
        self.failed = {}

    def run(self, meter, name, fn, record=True):
        if name in self.failed:
            return None
        try:
            result = meter(fn)
        except Exception as error:
            if not _is_oom(error):
                raise
            self.failed[name] = "out of memory"
            log(f"{name}: out of memory")
            result = None
        if result is None:   # outside the except block, whose traceback still holds the failed call's tensors
            gc.collect()
            if meter.cuda:
                torch.cuda.empty_cache()
            return None
        if record:
            self.data.setdefault(name, []).append(result)
        return result

    def summary(self, name, reference=None):
        if name in self.failed:
            return {"failed": self.failed[name]}
        rows = self.data.get(name, [])
        if not rows:
            return None
        times = [r[0] for r in rows]
        out = {"time_s": statistics.median(times), "times_s": times, "repeats": len(rows)}
        if name != reference and reference in self.data:
            # per-repeat pairs: a slow spell on a shared machine hits both sides of the ratio
            pairs = [t / p[0] for t, p in zip(times, self.data[reference])]
            out["ratio_vs_plain"] = statistics.median(pairs)
        if rows[0][1] is not None:
            out["peak_bytes"] = int(statistics.median(r[1] for r in rows))
            out["peak_rise_bytes"] = int(statistics.median(r[2] for r in rows))
        return out


# ----------------------------------------------------------------------------------------------- model
def conditioning(seed):
    """CONDITIONING as a Wan text encoder returns it: [[cond [1, 512, 4096], {}]]."""
    gen = torch.Generator().manual_seed(int(seed))
    return [[torch.randn((1, TEXT_TOKENS, TEXT_DIM), generator=gen), {}]]


def latent_shape(frames, height, width):
    return (1, LATENT_CHANNELS, (frames - 1) // 4 + 1, height // 8, width // 8)


# ----------------------------------------------------------------------------------------------- the benchmark
@dataclasses.dataclass
class Context:
    harness: object
    fade_guide: object
    fade_sampler: object
    reference_cache: object
    sampling: object
    renoise: object
    capture: object
    gradient_pass: object
    sketch: object
    spectral: object
    freeinit: object
    patcher: object
    meter: Meter
    device: object
    args: argparse.Namespace
    latent: dict
    sigmas: object
    source: list
    target: list
    target2: list
    negative: list
    lpf: object
    ks: tuple


def guide_inputs(ctx, trajectory):
    """The Sketch-Block Spectrum Guide as the official code configures it (K = 4, 2/3 box, 2d, attention)."""
    return dict(model=ctx.patcher, trajectory=trajectory, source_conditioning=ctx.source, filter=ctx.lpf,
                sketch_blocks=min(REFERENCE_K, ctx.args.blocks), strength=1.0, guided_fraction=ctx.args.guided_fraction,
                feature="attention", spectrum="2d", normalisation="unit", ratio_min=0.33, ratio_max=3.0,
                memory=ctx.args.edit_memory)


def invert(ctx):
    return ctx.harness.call_node("FADE_DDIMInvert", model=ctx.patcher, conditioning=ctx.source, latent=ctx.latent,
                                 sigmas=ctx.sigmas, cfg=1.0, refine=0)


def make_guider(ctx, model, positive):
    import comfy.samplers
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_set_conds({"positive": positive, "negative": ctx.negative})
    guider.set_cfg(ctx.args.cfg)
    return guider


def sample(ctx, model, positive, noise, sampler):
    """SamplerCustomAdvanced's path, under inference mode as the executor runs it."""
    guider = make_guider(ctx, model, positive)
    with torch.inference_mode():
        return guider.sample(noise, ctx.latent["samples"], sampler, ctx.sigmas, disable_pbar=True, seed=0)


class _Budget:
    """Stops repeating a section once the next repeat would pass its share of --budget-s."""

    def __init__(self, total_s, start):
        self.total_s, self.start = total_s, start

    def allows(self, share, last_repeat_s):
        if self.total_s is None:
            return True
        return time.perf_counter() - self.start + last_repeat_s <= share * self.total_s


def step_benchmark(ctx, budget):
    """Per-step costs, measured the way sample_modulated_ddim runs a step, inside a live sampling call."""
    _, trajectory = invert(ctx)
    guided_model = ctx.harness.call_node("FADE_SketchSpectrumGuide", **guide_inputs(ctx, trajectory))[0]
    base_guide = ctx.fade_guide.find_guide({"transformer_options": {"wrappers": guided_model.wrappers}})
    results = {}

    def probe(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        results.update(_measure_steps(ctx, base_guide, model_k, x, sigmas, extra_args, budget))
        return x

    noise = torch.randn(ctx.latent["samples"].shape, generator=torch.Generator().manual_seed(5))
    sample(ctx, guided_model, ctx.target, noise, ctx.fade_sampler.ModulatedKSampler(probe))
    return results


def _measure_steps(ctx, base_guide, model_k, x, sigmas, extra_args, budget):
    fade_sampler, sketch, meter = ctx.fade_sampler, ctx.sketch, ctx.meter
    guided_steps = sketch.guided_step_count(len(sigmas) - 1, base_guide.guided_fraction)
    step = 1 if guided_steps > 1 else 0
    s_in = x.new_ones([x.shape[0]])
    sigma = sigmas[step] * s_in
    gen = torch.Generator(device=x.device).manual_seed(7)
    # a latent near the trajectory, as the sampler sees it after the first guided step
    x_step = base_guide.trajectory.at_step(step, x.device, x.dtype) + 0.05 * torch.randn(
        x.shape, generator=gen, device=x.device, dtype=x.dtype)

    def new_run(k, memory):
        settings = dataclasses.replace(base_guide, sketch_blocks=k, memory=memory)
        # its own cache, so that cold / warm are measured without touching the process-wide one
        cache = ctx.reference_cache.ReferenceCache(budget_bytes=1 << 40)
        return fade_sampler.GuideRun(settings, model_k, x, sigmas, extra_args, cache=cache)

    def plain():
        return model_k(x_step, sigma, **extra_args)

    parts = {}

    def guided(run, cold, name):
        def go():
            if cold:
                run.cache.clear()
            t0 = time.perf_counter()
            grad = run.gradient(step, x_step, sigma)
            meter.sync()
            t1 = time.perf_counter()
            denoised = model_k(x_step, sigma, **extra_args)
            out = run.modulate(x_step, denoised, grad, sigmas[step], None)
            meter.sync()
            parts.setdefault(name, []).append((t1 - t0, time.perf_counter() - t1))
            return out
        return go

    def naive(run):
        return lambda: _naive_step(ctx, run, model_k, x_step, sigma, sigmas[step], step, extra_args)

    variants = [("plain_cfg", plain)]
    runs = {}
    for k in ctx.ks:
        runs[k] = new_run(k, ctx.fade_guide.MEMORY_FAST)
        variants += [(f"guided_k{k}_cold", guided(runs[k], True, f"guided_k{k}_cold")),
                     (f"guided_k{k}_warm", guided(runs[k], False, f"guided_k{k}_warm"))]
    k_ref = REFERENCE_K if REFERENCE_K in ctx.ks else max(ctx.ks)
    if "offload" not in ctx.args.skip:
        off = new_run(k_ref, ctx.fade_guide.MEMORY_OFFLOAD)
        variants += [(f"guided_k{k_ref}_offload_cold", guided(off, True, f"guided_k{k_ref}_offload_cold")),
                     (f"guided_k{k_ref}_offload_warm", guided(off, False, f"guided_k{k_ref}_offload_warm"))]
    if "naive" not in ctx.args.skip:
        variants.append((f"naive_k{k_ref}", naive(runs[k_ref])))

    samples = Samples()
    for _ in range(ctx.args.warmup):
        for name, fn in variants:
            samples.run(meter, name, fn, record=False)
    parts.clear()
    last = 0.0
    for r in range(ctx.args.repeats):
        if r > 0 and not budget.allows(0.55, last):
            log(f"steps: stopping after {r} repeats (time budget)")
            break
        t0 = time.perf_counter()
        for name, fn in variants:
            samples.run(meter, name, fn)
        last = time.perf_counter() - t0
        log(f"steps: repeat {r + 1}/{ctx.args.repeats} took {last:.1f} s")

    out = {"step_index": step, "sigma": float(sigmas[step]), "k_reference": k_ref, "variants": {}}
    plain_summary = samples.summary("plain_cfg")
    for name, _ in variants:
        summary = samples.summary(name, "plain_cfg")
        if summary is None:
            continue
        if name in parts and parts[name]:
            summary["gradient_s"] = statistics.median(p[0] for p in parts[name])
            summary["cfg_call_s"] = statistics.median(p[1] for p in parts[name])
        if "time_s" in summary and name != "plain_cfg":
            if "peak_bytes" in summary:
                summary["memory_vs_plain_bytes"] = summary["peak_bytes"] - plain_summary["peak_bytes"]
                summary["rise_vs_plain_bytes"] = summary["peak_rise_bytes"] - plain_summary["peak_rise_bytes"]
        out["variants"][name] = summary
    return out


def _naive_step(ctx, run, model_k, x, sigma, sigma_scalar, step, extra_args):
    """What a direct port of the official code costs: the source features recomputed by a full forward, the
    current ones by a full forward with autograd (no early exit), then backward, then the CFG call."""
    sketch, guide = ctx.sketch, run.settings
    source = guide.trajectory.at_step(step, x.device, x.dtype)
    with torch.no_grad():
        references = [sketch.low_band(f, run.band, guide.spectrum)
                      for f in _full_forward_features(ctx, run, source, sigma, grad=False)]
    with ctx.gradient_pass.differentiable_model_code(clone_saved=run.arch.saves_inplace):
        z = x.detach().clone().requires_grad_(True)
        features = _full_forward_features(ctx, run, z, sigma.clone(), grad=True)
        energy = sketch.sketch_energy(features, references, [run.band] * len(features), guide.spectrum)
        (grad,) = torch.autograd.grad(energy, z)
    denoised = model_k(x, sigma, **extra_args)
    return run.modulate(x, denoised, grad.detach(), sigma_scalar, None)


def _full_forward_features(ctx, run, latent, sigma, grad):
    """The pack's capture without its early exit: the whole network runs, as in the official code."""
    capture = ctx.capture.SketchCapture(run.arch, run.settings.sketch_blocks, run.settings.feature, early_exit=False)
    return capture.features(run.base_model, run.source_cond, latent, sigma, run.model_options, run.grid,
                            for_gradient=grad)


def edit_benchmark(ctx, budget):
    """Whole edit (inversion + guided sampling, cold reference cache) vs plain sampling, and a re-run with another
    target prompt (trajectory and reference cache reused), interleaved per repeat."""
    import comfy.samplers
    meter = ctx.meter
    ddim = comfy.samplers.sampler_object("ddim")
    modulated = ctx.harness.call_node("FADE_ModulatedDDIMSampler", blend_fraction=0.7)[0]
    noise = torch.randn(ctx.latent["samples"].shape, generator=torch.Generator().manual_seed(11))
    samples = Samples()
    last = 0.0
    for r in range(ctx.args.edit_repeats):
        if r > 0 and not budget.allows(0.9, last):
            log(f"edit: stopping after {r} repeats (time budget)")
            break
        t0 = time.perf_counter()
        samples.run(meter, "plain_sampling", lambda: sample(ctx, ctx.patcher, ctx.target, noise, ddim))
        state = {}

        def inversion():
            state["noise"], state["trajectory"] = invert(ctx)

        def guided_sampling():
            state["model"] = ctx.harness.call_node("FADE_SketchSpectrumGuide",
                                                   **guide_inputs(ctx, state["trajectory"]))[0]
            start = state["noise"].generate_noise(ctx.latent)
            return sample(ctx, state["model"], ctx.target, start, modulated)

        def rerun():
            return sample(ctx, state["model"], ctx.target2, state["noise"].generate_noise(ctx.latent), modulated)

        if samples.run(meter, "inversion", inversion) is not None:
            if samples.run(meter, "guided_sampling", guided_sampling) is not None:
                samples.run(meter, "rerun_warm_cache", rerun)
        state.clear()
        last = time.perf_counter() - t0
        log(f"edit: repeat {r + 1}/{ctx.args.edit_repeats} took {last:.1f} s")

    out = {name: samples.summary(name, "plain_sampling") for name in ("plain_sampling", "inversion",
                                                                      "guided_sampling", "rerun_warm_cache")}
    plain, inv, gs, rerun_s = (out[n] for n in ("plain_sampling", "inversion", "guided_sampling", "rerun_warm_cache"))
    if all(s and "time_s" in s for s in (plain, inv, gs)):
        n = min(len(inv["times_s"]), len(gs["times_s"]))
        totals = [a + b for a, b in zip(inv["times_s"][:n], gs["times_s"][:n])]
        edit = {"time_s": statistics.median(totals), "times_s": totals, "repeats": n,
                "ratio_vs_plain": statistics.median(t / p for t, p in zip(totals, plain["times_s"]))}
        if "peak_bytes" in inv:
            edit["peak_bytes"] = max(inv["peak_bytes"], gs["peak_bytes"])
            edit["peak_rise_bytes"] = max(inv["peak_rise_bytes"], gs["peak_rise_bytes"])
        out["whole_edit"] = edit
        for s in (edit, rerun_s):
            if s and "time_s" in s:
                if "peak_bytes" in s:
                    s["memory_vs_plain_bytes"] = s["peak_bytes"] - plain["peak_bytes"]
                    s["rise_vs_plain_bytes"] = s["peak_rise_bytes"] - plain["peak_rise_bytes"]
    return out


def freeinit_benchmark(ctx, plain_step_s):
    """Mask build (cold cache) and FreeInit re-initialisation on a Wan-sized latent, vs one step and one pass."""
    spectral, core = ctx.spectral, ctx.freeinit
    cpu = torch.device("cpu")
    t, h, w = FREEINIT_GRID
    repeats = max(5, ctx.args.repeats)

    def median_time(fn, device):
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def cold_mask(kind, device, half=True):
        lpf = spectral.LowPassFilter(kind, 0.25, 0.25, 4)

        def build():
            spectral.clear_mask_cache()
            return lpf.half_mask(t, h, w, device=device) if half else lpf.mask(t, h, w, device=device)
        return build

    # half: the rfft mask FreeInit's mix uses; full: the fftn-order mask (band energy, previews)
    out = {"grid": list(FREEINIT_GRID), "filter": spectral.DEFAULT_FILTER.describe(), "mask_build_cpu_ms": {},
           "mask_build_full_cpu_ms": {}}
    for kind in spectral.FILTER_TYPES:
        for half, key in ((True, "mask_build_cpu_ms"), (False, "mask_build_full_cpu_ms")):
            cold_mask(kind, cpu, half)()   # the first call pays one-off set-up
            out[key][kind] = 1e3 * median_time(cold_mask(kind, cpu, half), cpu)
    out["mask_build_cpu_ms_max"] = max(list(out["mask_build_cpu_ms"].values())
                                       + list(out["mask_build_full_cpu_ms"].values()))
    device = ctx.device
    cold_mask("gaussian", device)()
    out["mask_build_device_ms"] = 1e3 * median_time(cold_mask("gaussian", device), device)

    # The re-initialisation exactly as the FreeInit node runs it between passes (warm mask).
    shape = (1, LATENT_CHANNELS, t, h, w)
    gen = torch.Generator().manual_seed(3)
    first_noise = torch.randn(shape, generator=gen)                          # the NOISE tensor: on the CPU
    previous = torch.randn(shape, generator=gen).to(device)                  # the pass's result: on the device
    empty = torch.zeros(shape)
    model_sampling = ctx.patcher.get_model_object("model_sampling")
    kind = ctx.sampling.parameterisation(model_sampling)
    sigma = ctx.renoise.resolve_renoise_sigma(model_sampling, 0.0)
    first_sigma = float(ctx.sigmas[0])

    def reinit():
        with torch.inference_mode():
            return ctx.renoise.reinitialised_noise(ctx.patcher, previous, first_noise, 1, spectral.DEFAULT_FILTER,
                                                   sigma, empty, first_sigma)
    z0 = previous.to(torch.float32)
    first_dev = first_noise.to(device)
    fresh_dev = torch.randn(shape, generator=gen).to(device)

    def mix():
        return core.reinitialise(z0, first_dev, fresh_dev, spectral.DEFAULT_FILTER, sigma, kind)
    reinit(), mix()
    out["frequency_mix_ms"] = 1e3 * median_time(mix, device)
    out["reinitialise_ms"] = 1e3 * median_time(reinit, device)
    spectral.clear_mask_cache()
    own_ms = out["mask_build_device_ms"] + out["reinitialise_ms"]
    out["own_work_ms"] = own_ms
    out["pass_steps"] = ctx.args.steps
    if plain_step_s:
        out["pct_of_step"] = 100.0 * own_ms / 1e3 / plain_step_s
        out["pct_of_pass"] = out["pct_of_step"] / ctx.args.steps
    return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------- report
def evaluate_targets(result):
    """The issue's targets. Each says where it is set (`scope`); `applies` is False when this run is not there,
    and `met` is then only indicative."""
    cfg, steps, edit, fi = result["config"], result["steps"], result.get("edit", {}), result["freeinit"]
    # the ratios hang on the token count too: at toy resolutions the text side of each block dominates
    wan_shape = cfg["size"] == "wan1.3b" and (cfg["height"], cfg["width"]) == (480, 832)
    grid = "x".join(map(str, FREEINIT_GRID))
    k_ref = steps.get("k_reference", REFERENCE_K)
    guided = steps["variants"].get(f"guided_k{k_ref}_cold", {})
    whole = edit.get("whole_edit", {})

    def row(name, value, applies, scope, note):
        goal = TARGETS[name]
        met = None if value is None else value <= goal
        return {"name": name, "goal": goal, "value": value, "met": met, "applies": applies, "scope": scope,
                "note": note}

    return [
        row("guided_step_k4", guided.get("ratio_vs_plain"), wan_shape, "Wan-1.3B shape at 480x832",
            f"guided step (K={k_ref}, cold reference cache) / plain CFG step"),
        row("whole_edit", whole.get("ratio_vs_plain"), wan_shape, "Wan-1.3B shape at 480x832",
            "whole edit (inversion + guided sampling) / plain sampling, same steps"),
        row("freeinit_pass_pct", fi.get("pct_of_pass"), wan_shape and tuple(cfg["latent"][2:]) == FREEINIT_GRID,
            f"Wan-1.3B shape sampling a {grid} latent", f"FreeInit own work (mask build + re-init) / one "
            f"{fi['pass_steps']}-step pass"),
        row("mask_build_cpu_ms", fi.get("mask_build_cpu_ms_max"), True, "any run",
            f"mask build, cold, CPU, {grid} (slowest filter)"),
    ]


def _time(s):
    if s is None:
        return "n/a"
    return f"{s * 1e3:.1f} ms" if s < 1.0 else f"{s:.2f} s"


def _bytes(b, signed=False):
    if b is None:
        return "n/a"
    sign = "-" if b < 0 else ("+" if signed else "")
    a = abs(b)
    return f"{sign}{a / (1 << 30):.2f} GiB" if a >= 1 << 30 else f"{sign}{a / (1 << 20):.1f} MiB"


def _repeats(summary):
    return summary.get("repeats", 0) if summary else 0


def markdown(result):
    meta, cfg = result["meta"], result["config"]
    steps, edit, fi = result["steps"], result.get("edit", {}), result["freeinit"]
    cuda = meta["device_type"] == "cuda"
    mem_head = "Peak memory" if cuda else "Peak RSS rise"
    mem_key = "peak_bytes" if cuda else "peak_rise_bytes"
    model = cfg["model"]
    lines = [
        f"**{cfg['size']}** Wan 2.1 t2v shape (dim {model['dim']}, {model['blocks']} blocks, {model['heads']} "
        f"heads, ffn {model['ffn']}, {model['params'] / 1e6:.1f} M params, {cfg['dtype']}), "
        f"{cfg['frames']} frames {cfg['height']}x{cfg['width']} -> latent {'x'.join(map(str, cfg['latent'][2:]))} "
        f"({cfg['tokens']} tokens), {cfg['steps']} steps, cfg {cfg['cfg']}, guided fraction "
        f"{cfg['guided_fraction']}, filter {cfg['filter']}. {meta['device_name']}"
        f"{'' if cuda else ' (%d threads)' % meta['cpu_threads']}, torch {meta['torch']}, ComfyUI "
        f"{meta['comfyui']}, {meta['date']}. Medians of {_repeats(steps['variants'].get('plain_cfg'))} (steps) / "
        f"{_repeats(edit.get('plain_sampling'))} (edit) interleaved repeats; memory: {meta['memory_kind']}.",
        "",
        f"| Measurement | Time | vs plain | {mem_head} | Memory vs plain |",
        "|---|---:|---:|---:|---:|",
    ]

    def add(label, s, plain_row=False):
        if not s:
            return
        if "failed" in s:
            lines.append(f"| {label} | {s['failed']} | | | |")
            return
        ratio = "1.00x" if plain_row else (f"{s['ratio_vs_plain']:.2f}x" if "ratio_vs_plain" in s else "")
        diff_key = "memory_vs_plain_bytes" if cuda else "rise_vs_plain_bytes"
        diff = "" if plain_row or diff_key not in s else _bytes(s[diff_key], signed=True)
        lines.append(f"| {label} | {_time(s['time_s'])} | {ratio} | {_bytes(s.get(mem_key))} | {diff} |")

    v = steps["variants"]
    add("Plain CFG step (cond + uncond batched)", v.get("plain_cfg"), plain_row=True)
    for k in cfg["ks"]:
        for cache in ("cold", "warm"):
            s = v.get(f"guided_k{k}_{cache}")
            extra = ""
            if s and "gradient_s" in s:
                extra = f" (gradient pass {_time(s['gradient_s'])})"
            add(f"Guided step K={k}, {cache} reference cache{extra}", s)
    k_ref = steps.get("k_reference", REFERENCE_K)
    for cache in ("cold", "warm"):
        add(f"Guided step K={k_ref}, offload activations, {cache} cache", v.get(f"guided_k{k_ref}_offload_{cache}"))
    add(f"Naive guided step K={k_ref} (full forward + backward, source recomputed)", v.get(f"naive_k{k_ref}"))
    if edit:
        add(f"Plain sampling, {cfg['steps']} steps", edit.get("plain_sampling"), plain_row=True)
        add("Whole FADE edit: inversion + guided sampling", edit.get("whole_edit"))
        inv, gs = edit.get("inversion"), edit.get("guided_sampling")
        if inv and gs and "time_s" in inv and "time_s" in gs:
            lines.append(f"| &nbsp;&nbsp;of which inversion / guided sampling | {_time(inv['time_s'])} / "
                         f"{_time(gs['time_s'])} | | | |")
        add("Re-run with another target prompt (trajectory + reference cache reused)", edit.get("rerun_warm_cache"))
    grid = "x".join(map(str, fi["grid"]))
    lines.append(f"| FreeInit mask build, cold, CPU, {grid} (slowest filter, half or full spectrum) | "
                 f"{fi['mask_build_cpu_ms_max']:.1f} ms | | | |")
    if cuda:
        lines.append(f"| FreeInit mask build, cold, {meta['device_type']} | {fi['mask_build_device_ms']:.2f} ms "
                     f"| | | |")
    lines.append(f"| FreeInit re-initialisation ({grid}, as the node runs it) | {fi['reinitialise_ms']:.1f} ms | "
                 f"| | |")
    if "pct_of_pass" in fi:
        lines.append(f"| FreeInit own work (mask build + re-init) / one plain step at this size | "
                     f"{fi['pct_of_step']:.3f} % | | | |")
        lines.append(f"| FreeInit own work / one {fi['pass_steps']}-step pass at this size | "
                     f"{fi['pct_of_pass']:.3f} % | | | |")
    lines += ["", "| Target | Goal | Measured | Met |", "|---|---:|---:|---|"]
    for t in result["targets"]:
        unit = {"freeinit_pass_pct": " %", "mask_build_cpu_ms": " ms"}.get(t["name"], "x")
        digits = 3 if unit == "x" else 2
        value = "n/a" if t["value"] is None else f"{t['value']:.{digits}f}{unit}"
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "no")
        if not t["applies"]:
            met += f" (indicative: set for the {t['scope']})"
        lines.append(f"| {t['note']} | <= {t['goal']}{unit} | {value} | {met} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--frames", type=int, help="pixel frames (latent frames = (F - 1) / 4 + 1)")
    p.add_argument("--height", type=int, help="pixels (latent = H / 8)")
    p.add_argument("--width", type=int, help="pixels (latent = W / 8)")
    p.add_argument("--steps", type=int, help="sampling steps of the edit and of the pass")
    p.add_argument("--repeats", type=int, help="repeats of the step measurements")
    p.add_argument("--edit-repeats", type=int, help="repeats of the whole-edit measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds of the step variants first")
    p.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)), help="sketch block counts K, comma separated")
    p.add_argument("--dim", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--ffn", type=int)
    p.add_argument("--blocks", type=int)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--guided-fraction", type=float, default=0.6)
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="weights; auto = what ComfyUI's loader would pick on this device")
    p.add_argument("--device", choices=["auto", "cpu"], default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is steadier on a busy machine)")
    p.add_argument("--edit-memory", choices=["fast", "offload activations"], default="fast",
                   help="the guide's memory setting in the whole-edit measurement")
    p.add_argument("--skip", default="", help="comma separated: naive, offload, edit")
    p.add_argument("--budget-s", type=float, help="stop adding repeats once this many seconds are near "
                                                    "(0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--comfyui", type=Path, help="ComfyUI checkout (default: COMFYUI_PATH, ~/ComfyUI)")
    args = p.parse_args(argv)
    preset = SIZES[args.size]
    for key in ("frames", "height", "width", "steps", "repeats", "edit_repeats", "budget_s", "dim", "heads", "ffn",
                "blocks"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    args.budget_s = args.budget_s or None
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - {"naive", "offload", "edit"}
    if unknown:
        p.error(f"--skip: unknown {sorted(unknown)}")
    args.ks = tuple(sorted({int(k) for k in args.ks.split(",") if k.strip()}))
    too_big = [k for k in args.ks if k > args.blocks or k < 1]
    if too_big:
        p.error(f"--ks {too_big}: K must lie in 1..{args.blocks} (blocks)")
    if args.dim % args.heads:
        p.error("--dim must be a multiple of --heads")
    if (args.frames - 1) % 4 or args.height % 16 or args.width % 16:
        p.error("frames must be 4n+1 and height/width multiples of 16 (Wan's VAE and 2x2 patches)")
    return args


def run(argv=None):
    """Run the benchmark; returns the result dict (also written to OUT/bench.json and OUT/bench.md)."""
    args = parse_args(argv)
    start = time.perf_counter()
    harness, host_info = setup_comfyui(args.comfyui, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    import comfy.model_management as mm
    import comfy.samplers
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    pack = harness.pack_module
    device = mm.get_torch_device()
    log(f"ComfyUI ready on {mm.get_torch_device_name(device)} ({time.perf_counter() - start:.1f} s)")

    import tiny_models
    config = tiny_models.wan21_config(args.dim, args.heads, args.ffn, args.blocks)
    patcher, params, dtype = tiny_models.build_wan21_on_device(config, args.dtype, args.seed)
    log(f"model: {params / 1e6:.1f} M params, {dtype} ({time.perf_counter() - start:.1f} s)")
    shape = latent_shape(args.frames, args.height, args.width)
    latent_format = patcher.model.latent_format
    spectral = pack("nodes.algo.spectral")
    ctx = Context(
        harness=harness, fade_guide=pack("nodes.fade.guide"), fade_sampler=pack("nodes.fade.sampler"),
        reference_cache=pack("nodes.fade.reference_cache"), sampling=pack("nodes.comfy_glue.sampling"),
        renoise=pack("nodes.freeinit.renoise"), capture=pack("nodes.comfy_glue.capture"),
        gradient_pass=pack("nodes.comfy_glue.gradient_pass"), sketch=pack("nodes.algo.sketch"),
        spectral=spectral, freeinit=pack("nodes.algo.freeinit"),
        patcher=patcher, meter=Meter(device), device=device, args=args,
        latent={"samples": latent_format.process_out(
            torch.randn(shape, generator=torch.Generator().manual_seed(args.seed + 1)))},
        sigmas=comfy.samplers.calculate_sigmas(patcher.get_model_object("model_sampling"), "simple",
                                               args.steps).cpu(),
        source=conditioning(args.seed + 10), target=conditioning(args.seed + 11),
        target2=conditioning(args.seed + 12), negative=conditioning(args.seed + 13),
        lpf=spectral.LowPassFilter("box", 0.67, 1.0, 4), ks=args.ks)
    budget = _Budget(args.budget_s, start)
    # Everything alive now lives to the end: freezing it keeps the per-measurement gc.collect() at milliseconds.
    gc.collect()
    gc.freeze()
    try:
        steps = step_benchmark(ctx, budget)
        log(f"steps done ({time.perf_counter() - start:.1f} s)")
        edit = {} if "edit" in args.skip else edit_benchmark(ctx, budget)
        if edit:
            log(f"edit done ({time.perf_counter() - start:.1f} s)")
        plain = steps["variants"].get("plain_cfg", {})
        fi = freeinit_benchmark(ctx, plain.get("time_s"))
    finally:
        gc.unfreeze()

    t, h, w = shape[2:]
    result = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device_type": device.type, "device_name": mm.get_torch_device_name(device),
            "torch": torch.__version__, "comfyui": comfyui_version(host_info.comfy_root),
            "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
            "memory_kind": ctx.meter.kind, "wall_s": None,
        },
        "config": {
            "size": args.size, "model": {"dim": args.dim, "heads": args.heads, "ffn": args.ffn,
                                         "blocks": args.blocks, "params": params},
            "dtype": str(dtype).replace("torch.", ""), "frames": args.frames, "height": args.height,
            "width": args.width, "latent": list(shape), "tokens": t * (h // 2) * (w // 2), "steps": args.steps,
            "repeats": args.repeats, "edit_repeats": 0 if "edit" in args.skip else args.edit_repeats,
            "warmup": args.warmup, "cfg": args.cfg, "guided_fraction": args.guided_fraction,
            "guided_steps": ctx.sketch.guided_step_count(args.steps, args.guided_fraction), "ks": list(args.ks),
            "filter": ctx.lpf.describe() + ", spectrum 2d, feature attention, unit normalisation",
            "edit_memory": args.edit_memory, "skip": sorted(args.skip),
        },
        "steps": steps,
        "edit": edit,
        "freeinit": fi,
    }
    result["targets"] = evaluate_targets(result)
    result["meta"]["wall_s"] = time.perf_counter() - start
    table = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "bench.md").write_text(table)
    print(table)
    log(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'} ({result['meta']['wall_s']:.1f} s)")
    return result


if __name__ == "__main__":
    run()
