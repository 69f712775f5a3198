"""The efficacy benchmark's batched training data (bench/efficacy/clips.py render_batch, train.py batch_rendered,
used when training on a lent GPU) is the clip-by-clip training data: same pixels for the same clips, same prompt
dropout shares, captions that match the pixels."""
import importlib.util
import sys
from pathlib import Path

import torch

EFFICACY = Path(__file__).resolve().parents[2] / "bench" / "efficacy"


def _load(name):
    """bench/efficacy/<name>.py as a module; sys.path as it was afterwards (train.py adds ComfyUI's checkout to it,
    which the core tier must never see)."""
    saved = list(sys.path)
    sys.path.insert(0, str(EFFICACY))          # train.py imports clips by name
    try:
        spec = importlib.util.spec_from_file_location(f"efficacy_{name}", EFFICACY / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def test_batched_render_is_the_clip_by_clip_render():
    clips = _load("clips")
    params = clips.random_params(torch.Generator().manual_seed(0), 48)
    batched = clips.render_batch(params)
    one_by_one = torch.stack([clips.render(c) for c in clips.params_to_clips(params)])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=0)
    assert {int(v) for v in params["shape"]} == {0, 1} and len({int(v) for v in params["colour"]}) == 4
    # the latent of a batch is the latent of each clip
    torch.testing.assert_close(clips.pixels_to_model(batched)[5:6], clips.pixels_to_model(one_by_one[5]))


def test_batched_params_keep_random_clips_ranges():
    clips = _load("clips")
    p = clips.random_params(torch.Generator().manual_seed(1), 4000)
    lo, hi = clips.RADIUS
    assert float(p["r"].min()) >= lo and float(p["r"].max()) <= hi
    end = p["p0"] + p["v"] * (clips.FRAMES - 1)
    for pos in (p["p0"], end):         # start and end inside the frame by the object's size plus a pixel
        assert bool((pos >= p["r"][:, None] + 1.0 - 1e-4).all())
        assert bool((pos <= clips.SIZE - 1.0 - p["r"][:, None] + 1e-4).all())
    # both ends uniform over their range: the mean start sits mid-frame
    assert abs(float(p["p0"].mean()) - clips.SIZE / 2) < 0.3


def test_batched_prompts_drop_tokens_like_the_clip_by_clip_batch():
    clips = _load("clips")
    train = _load("train")
    x0, ctx = train.batch_rendered(torch.Generator().manual_seed(2), 3000, "cpu")
    table = clips.token_table()
    ids = torch.cdist(ctx.reshape(-1, table.shape[1]), table).argmin(1).reshape(-1, 2)
    no_colour, no_shape = ids[:, 0] == clips.NULL_COLOUR, ids[:, 1] == clips.NULL_SHAPE
    for share in ((no_colour & no_shape).float().mean(), (no_colour & ~no_shape).float().mean(),
                  (~no_colour & no_shape).float().mean()):
        assert abs(float(share) - 0.1) < 0.02
    # a named colour is the colour of the object in the pixels
    pix = clips.model_to_pixels(x0[:200]).reshape(200, clips.FRAMES, clips.SIZE, clips.SIZE, 3)
    colours = torch.tensor(list(clips.COLOURS.values()))
    for i in range(200):
        if ids[i, 0] == clips.NULL_COLOUR:
            continue
        frame = pix[i, 0]
        obj = frame[(frame - clips.BACKGROUND).abs().amax(-1) > 0.3].mean(0)
        assert int((colours - obj).norm(dim=1).argmin()) == int(ids[i, 0])
