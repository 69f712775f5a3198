"""Train the benchmark's tiny Wan 2.1 model on synthetic clips (CPU, --threads, runs in the background).

The network is ComfyUI's own comfy.ldm.wan.model.WanModel (dim 128 = 1 head x 128, which is what ComfyUI's
Wan detection requires; text_dim 4096, which it assumes), built with comfy.ops like a loaded checkpoint.
Objective: ComfyUI's CONST flow convention, x_s = (1 - s) x0 + s eps, the network predicts v = eps - x0 at
timestep model_sampling.timestep(s) (= 1000 s), with s drawn half uniform, half through ModelSamplingDiscreteFlow's
shift (the shift the benchmark samples with), so every sigma a sampler visits is trained; --focus-fraction moves
that share of each batch to U(--focus-sigma, 1), where a sample's layout and motion are decided (started from a
training clip noised to 0.875 the sampler keeps its path within 0.5 px; from 0.92 and above it does not).
Prompts: 10 % empty, 10 % colour only, 10 % shape only (cfg and an empty inversion prompt need these).
Saves an EMA of the weights as fp16 safetensors (keys as a diffusion_models file, loadable by UNETLoader),
its config JSON and the log, every --save-every seconds, so the run can be stopped at any time.
--device cuda trains on a GPU (gpu_round.sh: one device-tool call), drawing each batch as tensors rendered at
once there (--data batched: clips.render_batch); the CPU default renders clip by clip as every run so far did.
--init warm-starts from a save; with --layers above its depth the saved blocks are spread over the deeper
model and the new ones start as the identity (see grow()), so training resumes from the same function.

    OMP_NUM_THREADS=1 nohup python bench/efficacy/train.py --minutes 70 > /tmp/train.out 2>&1 &
    python bench/efficacy/train.py --init bench/efficacy/model/tiny_wan_shapes.safetensors --layers 9 \
        --name tiny_wan_shapes_deeper --lr 3e-4 --decay cosine --bf16 --compile
"""
import argparse
import copy
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
COMFY = Path(os.environ.get("COMFYUI_PATH", Path.home() / "ComfyUI")).expanduser()
sys.path.insert(0, str(COMFY))

import torch                       # noqa: E402

import clips                       # noqa: E402

CONFIG = dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), in_dim=16, out_dim=16, dim=128,
              num_heads=1, ffn_dim=384, num_layers=6, freq_dim=256, text_dim=4096, window_size=(-1, -1),
              qk_norm=True, cross_attn_norm=True, eps=1e-6)
TRAIN_SHIFT = 3.0
OUT = HERE / "model"
NAME = "tiny_wan_shapes"


def comfy_cpu():
    """Point ComfyUI's model management at the CPU before anything imports it (no CUDA here)."""
    import comfy.cli_args
    comfy.cli_args.args.cpu = True


def differentiable_host():
    """Let autograd through ComfyUI's WanModel on every supported host. v0.8+ runs RoPE through comfy-kitchen
    kernels that have no backward: register the pack's plain-torch formulas for them (FADE's gradient pass does the
    same, nodes/comfy_glue/gradient_pass.py), and set the host's own training switch, with which v0.33 skips most
    of them. v0.3.64 needs neither. Returns the kernels' states (empty where there is no comfy-kitchen)."""
    import comfy.model_management
    if hasattr(comfy.model_management, "in_training"):
        comfy.model_management.in_training = True
    path = HERE.parents[1] / "nodes" / "comfy_glue" / "gradient_pass.py"
    spec = importlib.util.spec_from_file_location("efficacy_gradient_pass", path)
    glue = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(glue)
    return {k: v for k, v in glue.ensure_kernel_autograd().items() if v != "absent"}


def build(seed, cpu=True):
    if cpu:
        comfy_cpu()
    import comfy.ops
    from comfy.ldm.wan.model import WanModel
    model = WanModel(**CONFIG, operations=comfy.ops.disable_weight_init, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if p.ndim == 1:
                # norm scales 1, biases 0
                p.copy_(torch.ones_like(p) if key.endswith("weight") and "norm" in key else torch.zeros_like(p))
            elif "modulation" in key:
                p.copy_(torch.randn(p.shape, generator=g) / CONFIG["dim"] ** 0.5)   # as Wan initialises it
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
        model.head.head.weight.zero_()       # start as "predict 0": stable first steps
    return model


def grow(state, model):
    """Warm-start a deeper model from a shallower save: the old blocks keep their order, spread evenly
    (old i -> floor(i * new / old)); each new block starts as the identity (its self-attention, cross-attention
    and FFN output projections zero), so the grown model computes exactly what the saved one did."""
    def depth(keys):
        return 1 + max(int(k.split(".")[1]) for k in keys if k.startswith("blocks."))
    old, new = depth(state), len(model.blocks)
    if old == new:
        return state
    if old > new:
        raise SystemExit(f"--init has {old} blocks, --layers {new}: only growing is supported")
    place = {i: i * new // old for i in range(old)}
    out = {k: v for k, v in state.items() if not k.startswith("blocks.")}
    for k, v in state.items():
        if k.startswith("blocks."):
            i, rest = k.split(".", 2)[1:]
            out[f"blocks.{place[int(i)]}.{rest}"] = v
    own = model.state_dict()
    for j in sorted(set(range(new)) - set(place.values())):
        for k, v in own.items():
            if k.startswith(f"blocks.{j}."):
                zero = k.endswith(("self_attn.o.weight", "self_attn.o.bias", "cross_attn.o.weight",
                                   "cross_attn.o.bias", "ffn.2.weight", "ffn.2.bias"))
                out[k] = torch.zeros_like(v) if zero else v
    return out


def batch(gen, n):
    """Model-space latents [n, 16, T, 16, 16] and contexts [n, 2, 4096] (with prompt dropout)."""
    xs, ids = [], []
    for _ in range(n):
        clip = clips.random_clip(gen)
        o = clip.objects[0]
        xs.append(clips.pixels_to_model(clips.render(clip)))
        r = torch.rand((), generator=gen).item()
        colour = None if r < 0.1 or 0.1 <= r < 0.2 else o.colour
        shape = None if r < 0.1 or 0.2 <= r < 0.3 else o.shape
        ids.append(clips.prompt_ids(colour, shape))
    return torch.cat(xs), clips.token_table()[torch.tensor(ids)]


def batch_rendered(gen, n, device):
    """batch()'s distribution, prompt dropout included, drawn as tensors and rendered at once on device (a GPU
    step takes milliseconds; rendering clip by clip would take most of a second at the batch sizes used there)."""
    p = {k: v.to(device) for k, v in clips.random_params(gen, n).items()}
    x0 = clips.pixels_to_model(clips.render_batch(p))
    r = torch.rand(n, generator=gen).to(device)
    colour = torch.where(r < 0.2, clips.NULL_COLOUR, p["colour"])
    shape = torch.where((r < 0.1) | ((r >= 0.2) & (r < 0.3)), clips.NULL_SHAPE, len(clips.COLOURS) + p["shape"])
    return x0, clips.token_table().to(device)[torch.stack([colour, shape], 1)]


def training_sigmas(gen, n, ms, focus_sigma=0.85, focus_fraction=0.0):
    """n training sigmas: half uniform, half through ms's shift (ComfyUI's time_snr_shift), then a focus_fraction
    share replaced by U(focus_sigma, 1). With focus_fraction 0 the generator is drawn exactly as before it existed."""
    u = torch.rand(n, generator=gen)
    shifted = ms.sigma(u * 1000)
    s = torch.where(torch.rand(n, generator=gen) < 0.5, u, shifted)
    if focus_fraction > 0:
        focus = focus_sigma + (1 - focus_sigma) * torch.rand(n, generator=gen)
        s = torch.where(torch.rand(n, generator=gen) < focus_fraction, focus, s)
    return s.clamp(1e-3, 1.0)


def save(ema, step, seconds, args, losses):
    from safetensors.torch import save_file
    out = Path(args.out_dir)
    sd = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in ema.state_dict().items()}
    tmp = out / (args.name + ".tmp")
    save_file(sd, str(tmp), metadata={"step": str(step)})
    os.replace(tmp, out / (args.name + ".safetensors"))
    meta = dict(config=CONFIG, train_shift=TRAIN_SHIFT, seed=args.seed, step=step, batch=args.batch, lr=args.lr,
                decay=args.decay, init=args.init and Path(args.init).name,
                ema=args.ema, bf16=args.bf16, compile=args.compile, device=args.device, data=args.data,
                focus_sigma=args.focus_sigma, focus_fraction=args.focus_fraction,
                seconds=round(seconds), threads=torch.get_num_threads(),
                params=sum(v.numel() for v in sd.values()), frames=clips.FRAMES, size=clips.SIZE,
                colours=list(clips.COLOURS), shapes=list(clips.SHAPES), context_seed=clips.CONTEXT_SEED,
                recent_loss=round(float(sum(losses[-200:])) / max(1, len(losses[-200:])), 5),
                torch=torch.__version__)
    (out / (args.name + ".json")).write_text(json.dumps(meta, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=70)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-every", type=float, default=240, help="seconds")
    ap.add_argument("--init", default=None, help="warm-start from these weights (a save of this script)")
    ap.add_argument("--name", default=NAME, help="output file stem under --out-dir")
    ap.add_argument("--out-dir", default=str(OUT), help="where the weights, config JSON and log go")
    ap.add_argument("--device", default="cpu",
                    help="torch device to train on: cpu, or cuda on a GPU the device tool lends (gpu_round.sh)")
    ap.add_argument("--data", choices=("clips", "batched"), default=None,
                    help="clips: batch() renders clip by clip (the CPU runs so far; the default on cpu); batched: the "
                         "same distribution drawn as tensors and rendered at once on --device (the default elsewhere)")
    ap.add_argument("--layers", type=int, default=CONFIG["num_layers"],
                    help="transformer blocks (more than --init has: new blocks start as the identity)")
    ap.add_argument("--focus-sigma", type=float, default=0.85, help="lower end of the focused sigma range")
    ap.add_argument("--focus-fraction", type=float, default=0.0,
                    help="share of each batch drawn from U(--focus-sigma, 1) instead of the usual mix")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the forward pass (weights, EMA and optimiser stay fp32); with "
                         "--compile about 1.9x faster per step on a CPU with AMX, but over twice as slow on one "
                         "with only AVX2 (9 blocks, batch 32, two threads: over 6 s a step against 3.3 in fp32); "
                         "check lscpu for amx_bf16 first")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (about a minute to start)")
    ap.add_argument("--decay", choices=("none", "cosine"), default="none",
                    help="learning-rate schedule after warm-up (cosine: to lr/10 at --minutes)")
    args = ap.parse_args()
    args.data = args.data or ("clips" if args.device == "cpu" else "batched")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    CONFIG["num_layers"] = args.layers
    if device.type == "cpu":
        comfy_cpu()
    import comfy.model_sampling
    ms = comfy.model_sampling.ModelSamplingDiscreteFlow()
    ms.set_parameters(shift=TRAIN_SHIFT, multiplier=1000)

    model = build(args.seed, cpu=device.type == "cpu")
    kernels = differentiable_host()
    if args.init:
        from safetensors.torch import load_file
        model.load_state_dict(grow({k: v.float() for k, v in load_file(args.init).items()}, model))
    model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    net = torch.compile(model) if args.compile else model     # shares model's parameters
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99),
                            fused=device.type == "cuda" or None)
    gen = torch.Generator().manual_seed(args.seed + 1)
    # the noise is drawn where it is used: a CPU draw of a GPU-sized batch would cost more than the step
    noise_gen = gen if device.type == "cpu" else torch.Generator(device).manual_seed(args.seed + 2)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logf = open(out_dir / (args.name + ".log"), "w")

    def draw(g):
        """One training batch (latents, contexts) on device, from generator g."""
        x0, ctx = batch_rendered(g, args.batch, device) if args.data == "batched" else batch(g, args.batch)
        return x0.to(device), ctx.to(device)

    def log(msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    log(f"config {json.dumps(CONFIG)} shift {TRAIN_SHIFT} args {vars(args)} "
        f"params {sum(p.numel() for p in model.parameters())}" + (f" comfy-kitchen {kernels}" if kernels else ""))
    if args.compile:
        # compile before the clock starts, and fall back to eager rather than lose a lent GPU's only call
        t = time.time()
        try:
            warm_gen = torch.Generator().manual_seed(0)      # leaves the training stream as it was without it
            x0, ctx = draw(warm_gen)
            s = training_sigmas(warm_gen, args.batch, ms).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                v = net(x0, ms.timestep(s), ctx)
            v.float().square().mean().backward()
            log(f"compiled in {time.time() - t:.0f} s")
        except Exception as e:      # noqa: BLE001 - any compiler failure
            log(f"torch.compile failed ({type(e).__name__}: {str(e)[:300]}); training eager")
            net = model
        opt.zero_grad(set_to_none=True)
    t0 = last_save = time.time()
    losses, step = [], 0
    while time.time() - t0 < args.minutes * 60:
        x0, ctx = draw(gen)
        eps = torch.randn(x0.shape, generator=noise_gen, device=noise_gen.device)
        s = training_sigmas(gen, args.batch, ms, args.focus_sigma, args.focus_fraction).to(device)
        sb = s.view(-1, 1, 1, 1, 1)
        xt = (1 - sb) * x0 + sb * eps
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            v = net(xt, ms.timestep(s), ctx)
        loss = torch.nn.functional.mse_loss(v.float(), eps - x0)
        warm = min(1.0, (step + 1) / 300)
        if args.decay == "cosine":
            done = min(1.0, (time.time() - t0) / (args.minutes * 60))
            warm *= 0.1 + 0.45 * (1 + math.cos(math.pi * done))
        for grp in opt.param_groups:
            grp["lr"] = args.lr * warm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        losses.append(loss.detach())        # read back every 100 steps, not every step (a GPU sync each)
        step += 1
        if step % 100 == 0:
            losses[-100:] = [float(v) for v in losses[-100:]]
            log(f"step {step} loss {sum(losses[-100:]) / 100:.4f} {(time.time() - t0) / step:.3f} s/step")
        if time.time() - last_save > args.save_every:
            save(ema, step, time.time() - t0, args, losses)
            log(f"saved step {step}")
            last_save = time.time()
    save(ema, step, time.time() - t0, args, losses)
    log(f"done step {step}" + (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GiB"
                               if device.type == "cuda" else ""))
    logf.close()


if __name__ == "__main__":
    main()
