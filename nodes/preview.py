"""Renders a filter's frequency response as an IMAGE (the 3D Low-Pass Filter node's second output)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .algo.spectral import REFERENCE_GRID, LowPassFilter

PROFILE_BINS = 1024          # a long 1-D grid samples the continuous response finely
PANEL = (360, 240)           # width, height of one profile panel
MARGIN = 34
BACKGROUND = (24, 24, 28)
AXIS = (150, 150, 160)
CURVE = {"spatial": (90, 200, 255), "temporal": (255, 170, 70)}
CUTOFF = (230, 80, 80)


def profiles(lpf: LowPassFilter):
    """(frequency, spatial gain, temporal gain) for normalised frequency 0..1, from the core's own mask."""
    n = PROFILE_BINS
    half = n // 2 + 1
    freq = np.arange(half) * 2.0 / n
    spatial = lpf.mask(1, n, 1)[0, :half, 0].numpy()
    temporal = lpf.mask(n, 1, 1)[:half, 0, 0].numpy()
    return freq, spatial, temporal


def _panel(draw: ImageDraw.ImageDraw, origin, title: str, freq, gain, cutoff: float, colour, font):
    x0, y0 = origin
    w, h = PANEL
    left, top, right, bottom = x0 + MARGIN, y0 + 22, x0 + w - 12, y0 + h - MARGIN
    draw.text((x0 + MARGIN, y0 + 4), title, fill=(230, 230, 235), font=font)
    draw.line([(left, bottom), (right, bottom)], fill=AXIS)
    draw.line([(left, top), (left, bottom)], fill=AXIS)
    for value, label in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):
        x = left + value * (right - left)
        draw.line([(x, bottom), (x, bottom + 4)], fill=AXIS)
        draw.text((x - 6, bottom + 6), label, fill=AXIS, font=font)
        y = bottom - value * (bottom - top)
        draw.text((x0 + 6, y - 6), label, fill=AXIS, font=font)
    draw.text((right - 110, bottom + 18), "freq (1 = Nyquist)", fill=AXIS, font=font)
    points = [(left + f * (right - left), bottom - float(g) * (bottom - top)) for f, g in zip(freq, gain)]
    draw.line(points, fill=colour, width=2)
    xc = left + min(max(cutoff, 0.0), 1.0) * (right - left)
    for y in range(int(top), int(bottom), 6):
        draw.line([(xc, y), (xc, y + 3)], fill=CUTOFF)
    draw.text((min(xc + 4, right - 60), top), f"cut {cutoff:g}", fill=CUTOFF, font=font)


def render_response(lpf: LowPassFilter) -> torch.Tensor:
    """IMAGE [1, H, W, 3] float32 in 0..1: spatial and temporal profiles with the cut-offs marked and the kept
    fractions on the reference grid written underneath."""
    font = ImageFont.load_default()
    width, height = PANEL[0] * 2, PANEL[1] + 44
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    freq, spatial, temporal = profiles(lpf)
    _panel(draw, (0, 0), "spatial gain (h or w axis)", freq, spatial, lpf.spatial_cutoff, CURVE["spatial"], font)
    _panel(draw, (PANEL[0], 0), "temporal gain (t axis)", freq, temporal, lpf.temporal_cutoff,
           CURVE["temporal"], font)
    t, h, w = REFERENCE_GRID
    kept = lpf.kept_fraction(t, h, w)
    energy = lpf.noise_energy_fraction(t, h, w)
    draw.text((10, PANEL[1] + 4), f"{lpf.describe()}", fill=(230, 230, 235), font=font)
    draw.text((10, PANEL[1] + 22),
              f"on a {t}x{h}x{w} latent: {100 * kept:.2f}% of spectrum bins kept (mean gain), "
              f"{100 * energy:.2f}% of white-noise energy kept", fill=(230, 230, 235), font=font)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).unsqueeze(0)
