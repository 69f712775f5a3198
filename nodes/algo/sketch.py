"""FADE's sketch-block spectrum energy and its gradient normalisations (arXiv 2506.05934; official code MIT,
EternalEvan/FADE). Pure torch.

The energy at one step compares the low band of the first K ("sketching") blocks' features on the current latent
z_t with the same features on the source trajectory latent z*_t (both with the source conditioning):

    G_t = sum_{k<K} mean | LPF(F(f_k(z_t))) - LPF(F(f_k(z*_t))) |^2

F is the orthonormal DFT over (t, h, w) ("3d", the paper) or over (h, w) per frame ("2d", the official code), so
by Parseval G_t equals the mean squared difference of the low-passed features in the token domain (what the
official code computes after its inverse FFT). Features are arranged as [B, D, T, H, W] on the patched token grid.

The source side is stored compactly: only the spectrum bins the filter keeps (gain above KEEP_THRESHOLD), already
multiplied by the gain. For the official 2/3 box that is 4/9 of the bins, and the ideal or box filters used for
FreeInit-style cut-offs keep far fewer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import torch

from .spectral import LowPassFilter

SPECTRUM_2D = "2d"
SPECTRUM_3D = "3d"
KEEP_THRESHOLD = 1e-4

# Feature layouts as they come out of a block (see the architecture table in nodes/architectures.py).
TOKENS = "tokens"    # [B, L, D], video tokens in (t, h, w) row-major order, possibly with extra tokens around them
GRID_THWBD = "thwbd" # [T, H, W, B, D] (Cosmos 1.0)
GRID_BTHWD = "bthwd" # [B, T, H, W, D] (Cosmos Predict2)


def tokens_to_grid(feature: torch.Tensor, grid: Tuple[int, int, int], layout: str = TOKENS,
                   token_offset: int = 0) -> torch.Tensor:
    """Arrange a block feature as [B, D, T, H, W].

    TOKENS: the video tokens are feature[:, token_offset : token_offset + T*H*W] (extra tokens such as reference
    frames or text are cut away). Grid layouts are permuted.
    """
    t, h, w = grid
    if layout == TOKENS:
        b, length, d = feature.shape
        n = t * h * w
        if token_offset + n > length:
            raise ValueError(f"feature has {length} tokens, fewer than the {n} video tokens of grid {grid} "
                             f"after {token_offset} extra tokens")
        return feature[:, token_offset:token_offset + n].transpose(1, 2).reshape(b, d, t, h, w)
    if layout == GRID_THWBD:
        return feature.permute(3, 4, 0, 1, 2)
    if layout == GRID_BTHWD:
        return feature.permute(0, 4, 1, 2, 3)
    raise ValueError(f"unknown feature layout {layout!r}")


def _spectrum_dims(spectrum: str) -> Tuple[int, ...]:
    if spectrum == SPECTRUM_3D:
        return (-3, -2, -1)
    if spectrum == SPECTRUM_2D:
        return (-2, -1)
    raise ValueError(f"spectrum must be '2d' or '3d', got {spectrum!r}")


@dataclass
class BandSelection:
    """Which half-spectrum bins of a (t, h, w) grid the filter keeps, with their gains and Parseval weights."""

    index: torch.Tensor      # flat indices into the half spectrum [T', H, W//2+1] (T' = T for 3d, 1 for 2d)
    gain: torch.Tensor       # float32 mask value at those bins
    weight: torch.Tensor     # 2 for bins whose conjugate twin is not stored by rfft, else 1
    numel: int               # number of samples the orthonormal transform covers (for the mean)


def band_selection(lpf: LowPassFilter, grid: Tuple[int, int, int], spectrum: str, device) -> BandSelection:
    t, h, w = grid
    mask_t = t if spectrum == SPECTRUM_3D else 1
    _spectrum_dims(spectrum)
    half = lpf.half_mask(mask_t, h, w, device=device)
    weight = torch.full_like(half, 2.0)
    weight[..., 0] = 1.0
    if w % 2 == 0:
        weight[..., -1] = 1.0
    flat = half.reshape(-1)
    index = torch.nonzero(flat > KEEP_THRESHOLD, as_tuple=False).squeeze(1)
    numel = (t if spectrum == SPECTRUM_3D else 1) * h * w
    return BandSelection(index=index, gain=flat[index], weight=weight.reshape(-1)[index], numel=numel)


def low_band(feature_grid: torch.Tensor, band: BandSelection, spectrum: str) -> torch.Tensor:
    """Gain-weighted kept bins of the orthonormal half spectrum of a [B, D, T, H, W] feature: complex, shape
    [B, D, kept] for 3d and [B, D, T, kept] for 2d."""
    dims = _spectrum_dims(spectrum)
    # At least float32 (no bf16/fp16 FFT); float64 stays float64 for finite-difference checks.
    work = feature_grid if feature_grid.dtype == torch.float64 else feature_grid.to(torch.float32)
    spec = torch.fft.rfftn(work, dim=dims, norm="ortho")
    if spectrum == SPECTRUM_3D:
        flat = spec.reshape(spec.shape[0], spec.shape[1], -1)
    else:
        flat = spec.reshape(spec.shape[0], spec.shape[1], spec.shape[2], -1)
    return flat.index_select(-1, band.index) * band.gain


def band_energy_difference(current: torch.Tensor, reference: torch.Tensor, band: BandSelection) -> torch.Tensor:
    """mean over (B, D, t, h, w) of |LPF(f) - LPF(f*)|^2 from the kept-bin spectra (Parseval, rfft weights)."""
    diff = current - reference
    per_bin = (diff.real ** 2 + diff.imag ** 2) * band.weight
    b, d = current.shape[:2]
    frames = current.shape[2] if current.ndim == 4 else 1
    return per_bin.sum() / (b * d * frames * band.numel)


def sketch_energy(features: Sequence[torch.Tensor], references: Sequence[torch.Tensor],
                  bands: Sequence[BandSelection], spectrum: str) -> torch.Tensor:
    """G_t summed over the sketch blocks. features: [B, D, T, H, W] grids (with autograd); references: their
    stored low bands (low_band of the source features)."""
    total = None
    for feature, reference, band in zip(features, references, bands):
        term = band_energy_difference(low_band(feature, band, spectrum), reference, band)
        total = term if total is None else total + term
    return total


def reference_energy(references: Sequence[torch.Tensor], bands: Sequence[BandSelection]) -> torch.Tensor:
    """sum_k mean |LPF(f*_k)|^2, the energy of the stored source bands themselves: the scale G_t is judged by."""
    total = None
    for reference, band in zip(references, bands):
        term = band_energy_difference(reference, torch.zeros_like(reference), band)
        total = term if total is None else total + term
    return total


ZERO_ENERGY_FLOOR = 4 * torch.finfo(torch.float32).eps   # float32 latents: the sampler's start can differ from the
                                                         # stored trajectory by an ulp, which the blocks amplify


def is_zero_energy(energy: torch.Tensor, scale: torch.Tensor, feature_dtype: torch.dtype) -> bool:
    """True when G_t <= eps^2 * scale with eps = max(rounding unit of the features' dtype, ZERO_ENERGY_FLOOR): the
    current and source low bands agree to within the precision they were computed in (relative rms), so grad G_t
    is rounding noise that either normalisation would blow up to full size. The official code likewise modulates
    only if the energy is not allclose to 0. Thresholds: bfloat16 features 6.1e-5, float16 9.5e-7, float32 2.3e-13
    relative to `scale` (reference_energy)."""
    eps = max(torch.finfo(feature_dtype).eps, ZERO_ENERGY_FLOOR)
    return float(energy) <= eps * eps * float(scale)


# ----------------------------------------------------------------------------------------------- normalisation
NORMALISE_UNIT = "unit"
NORMALISE_CFG_RELATIVE = "cfg-relative"


def unit_direction(gradient: torch.Tensor) -> torch.Tensor:
    """g / rms(g) per batch item: a direction whose per-element size is 1, independent of latent size."""
    dims = tuple(range(1, gradient.ndim))
    rms = gradient.pow(2).mean(dim=dims, keepdim=True).sqrt()
    return gradient / rms.clamp_min(1e-20)


def cfg_relative(gradient: torch.Tensor, cfg_term: torch.Tensor, strength: float, ratio_min: float,
                 ratio_max: float) -> torch.Tensor:
    """The official code's rescaling: g' = strength * g, then scaled so ||g'|| / ||cfg_term|| lies in
    [ratio_min, ratio_max] (both bounds apply: a small gradient is amplified to ratio_min), per batch item."""
    dims = tuple(range(1, gradient.ndim))
    scaled = gradient * strength
    g_norm = scaled.pow(2).sum(dim=dims, keepdim=True).sqrt()
    c_norm = cfg_term.pow(2).sum(dim=dims, keepdim=True).sqrt()
    ratio = g_norm / c_norm.clamp_min(1e-20)
    target = ratio.clamp(min=ratio_min, max=ratio_max)
    return scaled * (target / ratio.clamp_min(1e-20))


def guided_step_count(total_steps: int, guided_fraction: float) -> int:
    """Number of leading steps that get the modulation (the official code: 30 of 50 -> 0.6)."""
    return int(round(total_steps * guided_fraction))


def blend_toward_source(x: torch.Tensor, source: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """Local blending: keep x where keep_mask = 1 (the edited region), the source trajectory elsewhere."""
    return source + keep_mask * (x - source)


# ----------------------------------------------------------------------------------------------- local blending
def mask_to_latent_grid(mask: torch.Tensor, grid: Tuple[int, int, int], dilate: bool = True) -> torch.Tensor:
    """A pixel-space MASK [F, H, W] (or [H, W]) in 0..1 -> a [T, H', W'] keep-mask on the latent grid.

    Frames map to latent frames as the causal video VAEs of the supported models encode them: frame 0 alone into
    latent frame 0, then groups of (F - 1) / (T - 1) (Wan, HunyuanVideo: 1-4 -> 1, 5-8 -> 2, ...). This differs
    from the official code, which max-groups frames 4j .. 4j+3 into latent frame j (0-3 -> 0, 4-7 -> 1, ...), one
    frame off the causal grouping of the 4k+1-frame clips it encodes. Space is max-pooled to the latent size, and
    a 3x3 dilation keeps edits from being clipped at the border (the official code also max-pools, 8x8, and
    dilates 3x3).
    """
    t, h, w = grid
    m = mask.to(torch.float32)
    if m.ndim == 2:
        m = m.unsqueeze(0)
    if m.ndim != 3:
        raise ValueError(f"a MASK is [frames, height, width], got shape {tuple(mask.shape)}")
    frames = m.shape[0]
    if frames == t or frames == 1:
        grouped = m.expand(t, -1, -1) if frames == 1 else m
    else:
        stride = (frames - 1) / max(t - 1, 1)
        groups = [m[:1]]
        for j in range(1, t):
            start = min(frames - 1, int(round(1 + (j - 1) * stride)))
            stop = max(start + 1, min(frames, int(round(1 + j * stride))))
            groups.append(m[start:stop].amax(dim=0, keepdim=True))
        grouped = torch.cat(groups, dim=0)
    pooled = torch.nn.functional.adaptive_max_pool2d(grouped.unsqueeze(1), (h, w)).squeeze(1)
    if dilate:
        pooled = torch.nn.functional.max_pool2d(pooled.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    return pooled.clamp(0.0, 1.0)
