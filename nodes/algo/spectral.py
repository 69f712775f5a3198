"""3-D low-pass filters over (t, h, w) and frequency mixing for video latents.

FreeInit's filters (arXiv 2312.07537; official code MIT, TianxingWu/FreeInit), re-derived from the paper's
definitions with two corrections:

* Frequencies come from ``torch.fft.fftfreq`` per axis, so the DC bin has distance exactly 0 for every T, H, W.
  The official builders place DC at ``2*(N//2)/N - 1``, which is -1/N for odd N: they attenuate DC on odd latent
  frame counts (Wan's 81 frames -> 21 latents: gain 0.98; T=3: 0.41; T=1: 0.0003).
* ``ideal`` keeps ``d <= d_s``. The official code tests ``d^2 <= 2*d_s`` (radius sqrt(2 d_s), 0.71 at d_s=0.25).
* ``box`` is symmetric, |2 f_t| <= d_t and |2 f_h|, |2 f_w| <= d_s. The official box rounds an index threshold,
  reuses the H threshold for W and is half-open, so it is one bin wider on the negative side.

Normalised frequency: 1 = Nyquist on every axis. With f = fftfreq(N) (cycles/sample, in [-0.5, 0.5)):

    d^2 = (d_s / d_t * 2 f_t)^2 + (2 f_h)^2 + (2 f_w)^2

    gaussian     M = exp(-d^2 / (2 d_s^2))
    butterworth  M = 1 / (1 + (d^2 / d_s^2)^n)
    ideal        M = [d <= d_s]
    box          M = [|2 f_t| <= d_t] * [|2 f_h| <= d_s] * [|2 f_w| <= d_s]

A zero cut-off keeps nothing (M = 0 everywhere: pure fresh noise).

All FFTs run in float32 whatever the input dtype (torch has no bf16 FFT and fp16 FFT is lossy / partial); results
are cast back to the input dtype.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Tuple

import torch

FILTER_TYPES = ("gaussian", "butterworth", "ideal", "box")

# Latent grid used to report kept fractions when no shape is given: Wan 2.1 at 480x832, 81 frames.
REFERENCE_GRID = (21, 60, 104)


def _axis_frequencies(n: int, device, half: bool = False) -> torch.Tensor:
    """Normalised frequency 2*f (1 = Nyquist) of each FFT bin, in torch.fft order (rfft order if `half`)."""
    f = torch.fft.rfftfreq(n, device=device) if half else torch.fft.fftfreq(n, device=device)
    return (2.0 * f).to(torch.float32)


def clear_mask_cache():
    """Forget every cached filter mask (for cold-start measurements)."""
    _cached_mask.cache_clear()


@functools.lru_cache(maxsize=64)
def _cached_mask(kind: str, spatial_cutoff: float, temporal_cutoff: float, order: int,
                 t: int, h: int, w: int, device: str, half: bool) -> torch.Tensor:
    dev = torch.device(device)
    ft = _axis_frequencies(t, dev).view(t, 1, 1)
    fh = _axis_frequencies(h, dev).view(1, h, 1)
    fw = _axis_frequencies(w, dev, half=half)
    fw = fw.view(1, 1, fw.numel())
    shape = (t, h, fw.shape[-1])
    if spatial_cutoff <= 0.0 or temporal_cutoff <= 0.0:
        return torch.zeros(shape, dtype=torch.float32, device=dev)
    if kind == "box":
        keep = (ft.abs() <= temporal_cutoff) & (fh.abs() <= spatial_cutoff) & (fw.abs() <= spatial_cutoff)
        return keep.to(torch.float32).expand(shape).contiguous()
    d2 = (spatial_cutoff / temporal_cutoff * ft) ** 2 + fh ** 2 + fw ** 2
    if kind == "gaussian":
        mask = torch.exp(-d2 / (2.0 * spatial_cutoff ** 2))
    elif kind == "butterworth":
        mask = 1.0 / (1.0 + (d2 / spatial_cutoff ** 2) ** order)
    elif kind == "ideal":
        mask = (d2 <= spatial_cutoff ** 2).to(torch.float32)
    else:
        raise ValueError(f"unknown filter type {kind!r}; use one of {', '.join(FILTER_TYPES)}")
    return mask.to(torch.float32)


@dataclass(frozen=True)
class LowPassFilter:
    """A 3-D low-pass filter over (t, h, w): the value carried by the FADE_FILTER socket.

    kind: one of FILTER_TYPES. spatial_cutoff (d_s) and temporal_cutoff (d_t): normalised frequencies in [0, 1],
    1 = Nyquist. order: Butterworth order n (ignored by the other kinds).

    ``mask(t, h, w, device)`` returns the float32 [t, h, w] gain in torch.fft.fftn order (unshifted, DC at [0,0,0]).
    Masks are cached per (shape, parameters, device); treat them as read-only.
    """

    kind: str = "gaussian"
    spatial_cutoff: float = 0.25
    temporal_cutoff: float = 0.25
    order: int = 4

    def __post_init__(self):
        if self.kind not in FILTER_TYPES:
            raise ValueError(f"filter type {self.kind!r} is not one of {', '.join(FILTER_TYPES)}")
        for name in ("spatial_cutoff", "temporal_cutoff"):
            value = getattr(self, name)
            if not (0.0 <= float(value) <= 1.0) or math.isnan(float(value)):
                raise ValueError(f"{name} must lie in [0, 1] (1 = Nyquist), got {value}")
        if int(self.order) < 1:
            raise ValueError(f"butterworth order must be >= 1, got {self.order}")

    def _key(self, device) -> Tuple:
        return (self.kind, float(self.spatial_cutoff), float(self.temporal_cutoff), int(self.order),
                str(torch.device(device) if device is not None else torch.device("cpu")))

    def mask(self, t: int, h: int, w: int, device=None) -> torch.Tensor:
        """Gain per FFT bin, float32 [t, h, w], torch.fft.fftn order."""
        kind, ds, dt, n, dev = self._key(device)
        return _cached_mask(kind, ds, dt, n, int(t), int(h), int(w), dev, False)

    def half_mask(self, t: int, h: int, w: int, device=None) -> torch.Tensor:
        """The same gain for torch.fft.rfftn's half spectrum: float32 [t, h, w // 2 + 1]."""
        kind, ds, dt, n, dev = self._key(device)
        return _cached_mask(kind, ds, dt, n, int(t), int(h), int(w), dev, True)

    def kept_fraction(self, t: int, h: int, w: int) -> float:
        """Mean gain over all spectrum bins (fraction of bins kept, for 0/1 filters)."""
        return float(self.mask(t, h, w).mean())

    def noise_energy_fraction(self, t: int, h: int, w: int) -> float:
        """Fraction of white-noise energy that passes the filter: mean of M^2 (Parseval)."""
        return float((self.mask(t, h, w) ** 2).mean())

    def describe(self) -> str:
        extra = f", order {self.order}" if self.kind == "butterworth" else ""
        return f"{self.kind} d_s={self.spatial_cutoff:g} d_t={self.temporal_cutoff:g}{extra}"


DEFAULT_FILTER = LowPassFilter()


# ----------------------------------------------------------------------------------------------- layouts
LAYOUT_VIDEO = "video"          # [B, C, T, H, W]: native video models (Wan, HunyuanVideo, LTXV, Mochi, Cosmos)
LAYOUT_FRAME_BATCH = "frames"   # [T, C, H, W]: frames in the batch dimension (AnimateDiff, SVD)


def detect_layout(x: torch.Tensor) -> str:
    """5-D tensors are native video latents, 4-D ones frame batches. Anything else is rejected."""
    if x.ndim == 5:
        return LAYOUT_VIDEO
    if x.ndim == 4:
        return LAYOUT_FRAME_BATCH
    raise ValueError(f"expected a video latent [B,C,T,H,W] or a frame batch [T,C,H,W], got shape {tuple(x.shape)}")


def grid_shape(x: torch.Tensor, layout: str | None = None) -> Tuple[int, int, int]:
    """(T, H, W) of a latent in either layout."""
    layout = layout or detect_layout(x)
    if layout == LAYOUT_VIDEO:
        return tuple(x.shape[-3:])
    return (x.shape[0], x.shape[-2], x.shape[-1])


def _to_video_view(x: torch.Tensor, layout: str) -> torch.Tensor:
    # A frame batch [T,C,H,W] becomes [1,C,T,H,W] (a view; the FFT makes its own contiguous copy).
    return x if layout == LAYOUT_VIDEO else x.permute(1, 0, 2, 3).unsqueeze(0)


def _from_video_view(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x if layout == LAYOUT_VIDEO else x.squeeze(0).permute(1, 0, 2, 3)


def _lowpass_video(x: torch.Tensor, lpf: LowPassFilter) -> torch.Tensor:
    """Real low-pass of a float32 [..., T, H, W] tensor via the half spectrum."""
    t, h, w = x.shape[-3:]
    spectrum = torch.fft.rfftn(x, dim=(-3, -2, -1))
    spectrum *= lpf.half_mask(t, h, w, device=x.device)
    return torch.fft.irfftn(spectrum, s=(t, h, w), dim=(-3, -2, -1))


def lowpass(x: torch.Tensor, lpf: LowPassFilter, layout: str | None = None) -> torch.Tensor:
    """IFFT(M * FFT(x)) over (t, h, w), computed in float32 and cast back to x's dtype."""
    layout = layout or detect_layout(x)
    video = _to_video_view(x, layout).to(torch.float32)
    return _from_video_view(_lowpass_video(video, lpf), layout).to(x.dtype)


def frequency_mix(low_source: torch.Tensor, high_source: torch.Tensor, lpf: LowPassFilter,
                  layout: str | None = None) -> torch.Tensor:
    """IFFT(M * FFT(low_source) + (1 - M) * FFT(high_source)) over (t, h, w).

    Both inputs share a shape ([B,C,T,H,W] or [T,C,H,W]); the result has low_source's dtype. Computed as
    high + IFFT(M * FFT(low - high)), which is the same linear map with one FFT pair instead of three transforms:
    M = 0 returns high_source exactly, M = 1 returns low_source up to float32 rounding.
    """
    if low_source.shape != high_source.shape:
        raise ValueError(f"cannot mix spectra of shapes {tuple(low_source.shape)} and {tuple(high_source.shape)}")
    layout = layout or detect_layout(low_source)
    low = _to_video_view(low_source, layout).to(torch.float32)
    high = _to_video_view(high_source, layout).to(torch.float32)
    mixed = high + _lowpass_video(low - high, lpf)
    return _from_video_view(mixed, layout).to(low_source.dtype)
