"""Seeded synthetic clips for the efficacy benchmark, and the lossless "VAE" the tiny model works in.

A clip is T frames of H x W RGB in [0, 1]: one (or two) coloured squares / discs moving in straight lines at
constant velocity over a dark grey (optionally textured) background. Its "prompt" is two tokens, colour and shape;
the text context the model cross-attends to is a fixed seeded 4096-d vector per token (the width ComfyUI's Wan
loader assumes for the text embedding), so any prompt is reproducible without a text encoder.

The "VAE" is 2x2 pixel-unshuffle of 2 (2p - 1) plus 4 zero channels (12 -> 16, Wan 2.1's latent width): exact,
so every pixel error measured is the model's and the sampler's, not a codec's. ComfyUI hands the model
process_latent_in(latent) (Wan 2.1's per-channel mean / std), so encode() returns process_latent_out of the
model-space latent and decode() undoes it: the diffusion model sees exactly what it was trained on.
No comfy imports at module level (usable from plain torch scripts).
"""
import dataclasses
import math

import torch

# Bright tints on a dark background: every object differs from the background mostly along one shared
# (luminance) direction, colour is a smaller offset. With saturated colours on mid-grey the colours' latent
# directions were nearly opposite (red vs blue: cosine -0.4), so recolouring an object meant a different
# noise projection carried it and inverted edits moved it (IoU 0.05 at cfg 1); here the cosine is about 0.8,
# as an object's luminance structure persists under recolouring in real video.
COLOURS = {
    "red": (0.95, 0.50, 0.50),
    "green": (0.50, 0.95, 0.50),
    "blue": (0.50, 0.55, 0.95),
    "yellow": (0.90, 0.85, 0.45),
}
SHAPES = ("square", "disc")
BACKGROUND = 0.15
RADIUS = (4.5, 7.0)     # half size range in px: large enough that a square's corners span several patches
FRAMES, SIZE = 5, 32
TEXT_DIM = 4096
LATENT_SCALE = 2.0      # latent std ~0.33 (flat grey is 0): enough signal against unit noise at mid sigmas
CONTEXT_SEED = 1234
# Token ids: colours, shapes, then the two "no colour" / "no shape" tokens (the empty prompt is both).
TOKENS = list(COLOURS) + list(SHAPES) + ["<no colour>", "<no shape>"]
NULL_COLOUR, NULL_SHAPE = len(COLOURS) + len(SHAPES), len(COLOURS) + len(SHAPES) + 1


@dataclasses.dataclass
class Obj:
    colour: str
    shape: str
    r: float            # half size in px (square: half side, disc: radius)
    p0: tuple           # (x, y) centre at frame 0
    v: tuple            # (vx, vy) px per frame


@dataclasses.dataclass
class Clip:
    objects: list
    texture: float = 0.0    # amplitude of the background texture (0: flat grey)
    texture_phase: tuple = (0.0, 0.0)

    def centres(self, frames=FRAMES):
        o = self.objects[0]
        return torch.tensor([[o.p0[0] + o.v[0] * t, o.p0[1] + o.v[1] * t] for t in range(frames)])


def random_clip(gen, size=SIZE, frames=FRAMES, n_objects=1, texture=0.0, colour=None, shape=None):
    """One clip: each object's path stays inside the frame (start and end drawn inside, velocity between)."""
    def u(a, b):
        return a + (b - a) * torch.rand((), generator=gen).item()
    objs = []
    for i in range(n_objects):
        c = colour if (colour and i == 0) else list(COLOURS)[torch.randint(len(COLOURS), (), generator=gen)]
        s = shape if (shape and i == 0) else SHAPES[torch.randint(len(SHAPES), (), generator=gen)]
        r = u(*RADIUS)
        lo, hi = r + 1.0, size - 1.0 - r
        p0 = (u(lo, hi), u(lo, hi))
        p1 = (u(lo, hi), u(lo, hi))
        v = ((p1[0] - p0[0]) / (frames - 1), (p1[1] - p0[1]) / (frames - 1))
        objs.append(Obj(c, s, r, p0, v))
    phase = (u(0, 2 * math.pi), u(0, 2 * math.pi))
    return Clip(objs, texture, phase)


def random_params(gen, n, size=SIZE, frames=FRAMES):
    """n single-object, untextured clips drawn from random_clip's distribution (same ranges, not the same random
    stream) as tensors, for render_batch: colour and shape indices [n], half size r [n], start p0 and velocity v
    [n, 2] (x, y)."""
    colour = torch.randint(len(COLOURS), (n,), generator=gen)
    shape = torch.randint(len(SHAPES), (n,), generator=gen)
    r = RADIUS[0] + (RADIUS[1] - RADIUS[0]) * torch.rand(n, generator=gen)
    lo, span = r + 1.0, size - 2.0 - 2 * r
    ends = lo[:, None, None] + span[:, None, None] * torch.rand(n, 2, 2, generator=gen)    # [n, start|end, x|y]
    return dict(colour=colour, shape=shape, r=r, p0=ends[:, 0], v=(ends[:, 1] - ends[:, 0]) / (frames - 1))


def params_to_clips(params):
    """random_params' tensors as Clip objects (what render() and the benchmark's analysis take)."""
    return [Clip([Obj(list(COLOURS)[int(c)], SHAPES[int(s)], float(r), tuple(p0.tolist()), tuple(v.tolist()))])
            for c, s, r, p0, v in zip(params["colour"], params["shape"], params["r"], params["p0"], params["v"])]


def render_batch(params, size=SIZE, frames=FRAMES):
    """[n, T, H, W, 3] in [0, 1]: render() of random_params' clips, all at once on the tensors' device (training
    on a GPU renders a batch of hundreds per step; clip by clip in Python that would cost more than the step)."""
    r = params["r"]
    dev = r.device
    axis = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    t = torch.arange(frames, device=dev, dtype=torch.float32)
    centre = params["p0"][:, None] + params["v"][:, None] * t[None, :, None]        # [n, T, 2]
    dx = axis.view(1, 1, 1, size) - centre[..., 0, None, None]                      # [n, T, 1, W]
    dy = axis.view(1, 1, size, 1) - centre[..., 1, None, None]                      # [n, T, H, 1]
    is_square = (params["shape"] == SHAPES.index("square")).view(-1, 1, 1, 1)
    a = soft_edge(dx, dy, is_square, r.view(-1, 1, 1, 1))[..., None]
    rgb = torch.tensor(list(COLOURS.values()), device=dev)[params["colour"]].view(-1, 1, 1, 1, 3)
    return (BACKGROUND * (1 - a) + rgb * a).clamp(0, 1)


def soft_edge(dx, dy, is_square, r):
    """Coverage from pixel offsets to a shape's centre (broadcasting): a square's (Chebyshev) or a disc's distance,
    with a 1-px soft edge, so sub-pixel motion is visible."""
    d = torch.where(torch.as_tensor(is_square), torch.maximum(dx.abs(), dy.abs()), torch.sqrt(dx * dx + dy * dy))
    return (r - d + 0.5).clamp(0, 1)


def coverage(shape, r, cx, cy, size=SIZE):
    """Anti-aliased coverage [H, W] of one shape."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    return soft_edge(xs - cx, ys - cy, shape == "square", r)


def render(clip, size=SIZE, frames=FRAMES):
    """[T, H, W, 3] float in [0, 1] (ComfyUI IMAGE layout)."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    bg = torch.full((size, size), BACKGROUND)
    if clip.texture:
        px, py = clip.texture_phase
        bg = bg + clip.texture * torch.sin(xs * 0.7 + px) * torch.sin(ys * 0.5 + py)
    out = bg[None, :, :, None].repeat(frames, 1, 1, 3)
    for t in range(frames):
        for o in clip.objects:
            a = coverage(o.shape, o.r, o.p0[0] + o.v[0] * t, o.p0[1] + o.v[1] * t, size)[..., None]
            out[t] = out[t] * (1 - a) + torch.tensor(COLOURS[o.colour]) * a
    return out.clamp(0, 1)


def prompt_ids(colour=None, shape=None):
    return [TOKENS.index(colour) if colour else NULL_COLOUR, TOKENS.index(shape) if shape else NULL_SHAPE]


_TABLE = None


def token_table():
    """[len(TOKENS), 4096] fixed embedding (seeded; scale ~ a T5 output's)."""
    global _TABLE
    if _TABLE is None:
        g = torch.Generator().manual_seed(CONTEXT_SEED)
        _TABLE = torch.randn(len(TOKENS), TEXT_DIM, generator=g) * 0.2
    return _TABLE


def context(colour=None, shape=None):
    """[1, 2, 4096] text context for a prompt (None = that token empty)."""
    return token_table()[prompt_ids(colour, shape)][None]


# ------------------------------------------------------------------------------------------------ "VAE"
def pixels_to_model(images):
    """[T, H, W, 3] in [0, 1] -> model-space latent [1, 16, T, H/2, W/2]; a batch [B, T, H, W, 3] -> [B, 16, ...]."""
    batch = images if images.ndim == 5 else images[None]
    b, t, h, w, _ = batch.shape
    x = ((batch.reshape(b * t, h, w, 3) * 2 - 1) * LATENT_SCALE).permute(0, 3, 1, 2)    # B*T, 3, H, W
    x = torch.nn.functional.pixel_unshuffle(x, 2)                                     # B*T, 12, H/2, W/2
    x = torch.cat([x, torch.zeros_like(x[:, :4])], 1)                                 # B*T, 16, ...
    return x.reshape(b, t, 16, h // 2, w // 2).permute(0, 2, 1, 3, 4).contiguous()


def model_to_pixels(latent):
    """Model-space latent [B, 16, T, h, w] -> [B*T, H, W, 3] (the 4 pad channels are dropped)."""
    b, c, t, h, w = latent.shape
    x = latent[:, :12].permute(0, 2, 1, 3, 4).reshape(b * t, 12, h, w)
    x = torch.nn.functional.pixel_shuffle(x.float(), 2)
    return ((x / LATENT_SCALE + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)


def _wan_format():
    import comfy.latent_formats
    return comfy.latent_formats.Wan21()


def encode(images):
    """Pixels -> the latent a LATENT dict carries (what ComfyUI's process_latent_in maps to model space)."""
    z = pixels_to_model(images)
    return _wan_format().process_out(z)


def decode(samples):
    return model_to_pixels(_wan_format().process_in(samples.float()))
