"""Masks against their closed forms, DC gain, kept fractions, mixing identities, dtypes and layouts."""
import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch


def closed_form(kind, ds, dt, n, t, h, w):
    """The issue's formulas, written independently with numpy loops over the axes' frequencies."""
    ft, fh, fw = (2 * np.fft.fftfreq(k) for k in (t, h, w))
    out = np.zeros((t, h, w))
    if ds == 0 or dt == 0:
        return out
    for i, j, k in itertools.product(range(t), range(h), range(w)):
        if kind == "box":
            out[i, j, k] = float(abs(ft[i]) <= dt and abs(fh[j]) <= ds and abs(fw[k]) <= ds)
            continue
        d2 = (ds / dt * ft[i]) ** 2 + fh[j] ** 2 + fw[k] ** 2
        if kind == "gaussian":
            out[i, j, k] = math.exp(-d2 / (2 * ds * ds))
        elif kind == "butterworth":
            out[i, j, k] = 1.0 / (1.0 + (d2 / ds ** 2) ** n)
        else:
            out[i, j, k] = float(math.sqrt(d2) <= ds)
    return out


@pytest.mark.parametrize("kind", ["gaussian", "butterworth", "ideal", "box"])
@pytest.mark.parametrize("shape", [(1, 6, 7), (3, 8, 8), (4, 5, 9), (21, 12, 10)])
@pytest.mark.parametrize("cutoffs", [(0.25, 0.25), (0.5, 0.2), (0.9, 1.0), (0.0, 0.3)])
def test_mask_matches_closed_form(algo, kind, shape, cutoffs):
    ds, dt = cutoffs
    lpf = algo.spectral.LowPassFilter(kind, ds, dt, 3)
    got = lpf.mask(*shape).double().numpy()
    want = closed_form(kind, ds, dt, 3, *shape)
    assert got.shape == shape
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "butterworth", "ideal", "box"])
@pytest.mark.parametrize("t", [1, 2, 3, 13, 20, 21])
def test_dc_gain_is_one_for_odd_and_even_frame_counts(algo, kind, t):
    lpf = algo.spectral.LowPassFilter(kind, 0.25, 0.25, 4)
    assert lpf.mask(t, 9, 10)[0, 0, 0].item() == 1.0


def test_half_mask_is_the_rfft_part_of_the_full_mask(algo):
    lpf = algo.spectral.LowPassFilter("butterworth", 0.3, 0.6, 2)
    for t, h, w in [(5, 6, 7), (4, 8, 8)]:
        full, half = lpf.mask(t, h, w), lpf.half_mask(t, h, w)
        assert torch.equal(full[..., : w // 2 + 1], half)


def test_zero_cutoff_keeps_nothing_and_mixing_returns_fresh_noise(algo):
    sp = algo.spectral
    x, n = torch.randn(1, 2, 5, 6, 8), torch.randn(1, 2, 5, 6, 8)
    for ds, dt in [(0.0, 0.5), (0.5, 0.0)]:
        lpf = sp.LowPassFilter("gaussian", ds, dt)
        assert lpf.kept_fraction(5, 6, 8) == 0.0
        assert torch.equal(sp.frequency_mix(x, n, lpf), n)


def test_kept_fractions_of_the_default_filter_on_a_wan_grid(algo):
    sp = algo.spectral
    t, h, w = sp.REFERENCE_GRID
    gaussian = sp.LowPassFilter()
    mask = closed_form("gaussian", 0.25, 0.25, 4, 5, 12, 13)
    # spot check of the closed form on a small grid, then the documented identities on the big one
    assert abs(sp.LowPassFilter().kept_fraction(5, 12, 13) - mask.mean()) < 1e-6
    assert abs(gaussian.noise_energy_fraction(t, h, w) - float((gaussian.mask(t, h, w) ** 2).mean())) < 1e-9
    # An ideal ball of radius 0.25 in the unit cube [-1,1)^3 keeps (4/3 pi 0.25^3) / 8 of the bins.
    ideal = sp.LowPassFilter("ideal", 0.25, 0.25)
    assert ideal.kept_fraction(t, h, w) == pytest.approx(4 / 3 * math.pi * 0.25 ** 3 / 8, rel=0.15)
    box = sp.LowPassFilter("box", 0.5, 1.0)
    inside = lambda n: sum(1 for k in range(n) if abs(2 * np.fft.fftfreq(n)[k]) <= 0.5) / n   # 2|k|/n <= 0.5
    assert box.kept_fraction(t, h, w) == pytest.approx(inside(h) * inside(w), abs=1e-7)


def test_mask_is_cached_per_shape_and_parameters(algo):
    lpf = algo.spectral.LowPassFilter("gaussian", 0.3, 0.2)
    assert lpf.mask(7, 8, 9) is lpf.mask(7, 8, 9)
    assert lpf.mask(7, 8, 9) is not lpf.mask(7, 8, 10)
    assert algo.spectral.LowPassFilter("gaussian", 0.3, 0.2).mask(7, 8, 9) is lpf.mask(7, 8, 9)


@pytest.mark.parametrize("bad", [dict(kind="triangle"), dict(spatial_cutoff=1.5), dict(temporal_cutoff=-0.1),
                                 dict(order=0)])
def test_invalid_filters_are_rejected_with_a_message(algo, bad):
    with pytest.raises(ValueError) as err:
        algo.spectral.LowPassFilter(**bad)
    assert any(word in str(err.value) for word in ("filter type", "[0, 1]", "order"))


def reference_mix(x, n, mask):
    """The textbook form: two FFTs, complex mix, inverse FFT, real part."""
    X = torch.fft.fftn(x.double(), dim=(-3, -2, -1))
    N = torch.fft.fftn(n.double(), dim=(-3, -2, -1))
    return torch.fft.ifftn(mask.double() * X + (1 - mask.double()) * N, dim=(-3, -2, -1)).real


@pytest.mark.parametrize("kind", ["gaussian", "butterworth", "ideal", "box"])
def test_frequency_mix_equals_the_textbook_formula(algo, kind):
    sp = algo.spectral
    x, n = torch.randn(2, 3, 5, 6, 7), torch.randn(2, 3, 5, 6, 7)
    lpf = sp.LowPassFilter(kind, 0.4, 0.3, 2)
    got = sp.frequency_mix(x, n, lpf)
    want = reference_mix(x, n, lpf.mask(5, 6, 7))
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=0)


def test_mixing_identities(algo):
    sp = algo.spectral
    x, n = torch.randn(1, 4, 6, 8, 8), torch.randn(1, 4, 6, 8, 8)
    everything = sp.LowPassFilter("box", 1.0, 1.0)      # |2f| <= 1 holds for every bin
    assert everything.kept_fraction(6, 8, 8) == 1.0
    torch.testing.assert_close(sp.frequency_mix(x, n, everything), x, atol=1e-5, rtol=0)
    nothing = sp.LowPassFilter("ideal", 0.0, 0.5)
    assert torch.equal(sp.frequency_mix(x, n, nothing), n)


def test_low_band_of_mix_is_low_band_of_source(algo):
    sp = algo.spectral
    x, n = torch.randn(1, 2, 9, 10, 12), torch.randn(1, 2, 9, 10, 12)
    lpf = sp.LowPassFilter("ideal", 0.4, 0.5)
    mixed = sp.frequency_mix(x, n, lpf)
    torch.testing.assert_close(sp.lowpass(mixed, lpf), sp.lowpass(x, lpf), atol=1e-5, rtol=0)
    high = lambda v: v - sp.lowpass(v, lpf)
    torch.testing.assert_close(high(mixed), high(n), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_transformed_in_float32_and_cast_back(algo, dtype):
    sp = algo.spectral
    x, n = torch.randn(1, 2, 5, 8, 8), torch.randn(1, 2, 5, 8, 8)
    lpf = sp.LowPassFilter("gaussian", 0.3, 0.3)
    got = sp.frequency_mix(x.to(dtype), n.to(dtype), lpf)
    assert got.dtype == dtype
    want = sp.frequency_mix(x.to(dtype).float(), n.to(dtype).float(), lpf)
    torch.testing.assert_close(got, want.to(dtype))   # one rounding of a float32 result, nothing worse


def test_frame_batch_layout_filters_over_frames(algo):
    sp = algo.spectral
    video = torch.randn(1, 4, 7, 6, 8)                  # [B, C, T, H, W]
    frames = video[0].permute(1, 0, 2, 3).contiguous()  # [T, C, H, W] as AnimateDiff batches frames
    noise_video = torch.randn_like(video)
    noise_frames = noise_video[0].permute(1, 0, 2, 3).contiguous()
    lpf = sp.LowPassFilter("butterworth", 0.3, 0.25, 4)
    assert sp.detect_layout(frames) == sp.LAYOUT_FRAME_BATCH
    assert sp.grid_shape(frames) == (7, 6, 8)
    mixed_frames = sp.frequency_mix(frames, noise_frames, lpf)
    mixed_video = sp.frequency_mix(video, noise_video, lpf)
    torch.testing.assert_close(mixed_frames, mixed_video[0].permute(1, 0, 2, 3))


def test_other_ranks_are_rejected(algo):
    with pytest.raises(ValueError, match="video latent"):
        algo.spectral.detect_layout(torch.zeros(4, 8, 8))


def test_mask_build_is_vectorised_and_fast_enough_to_not_matter(algo):
    # Not a timing assertion (the benchmark owns those): the number of torch calls that build a mask must not grow
    # with the grid (a Python loop over voxels would make one or more per bin), and stays small.
    from torch.overrides import TorchFunctionMode

    class CountCalls(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls += 1
            return func(*args, **(kwargs or {}))

    counts = {}
    for grid in ((3, 4, 6), (41, 120, 832)):
        algo.spectral.clear_mask_cache()
        lpf = algo.spectral.LowPassFilter("butterworth", 0.21, 0.23, 4)
        with CountCalls() as counter:
            m = lpf.mask(*grid)
        assert m.shape == grid and m.dtype == torch.float32
        counts[grid] = counter.calls
    assert counts[(41, 120, 832)] == counts[(3, 4, 6)] <= 100, counts


def test_algo_package_imports_no_comfyui():
    code = ("import sys, importlib.util, pathlib; d = pathlib.Path('nodes/algo');"
            "s = importlib.util.spec_from_file_location('a', d / '__init__.py', submodule_search_locations=[str(d)]);"
            "m = importlib.util.module_from_spec(s); sys.modules['a'] = m; s.loader.exec_module(m);"
            "import a.spectral, a.freeinit, a.ddim, a.sketch;"
            "bad = [k for k in sys.modules if k.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'server', 'nodes')];"
            "print(bad); sys.exit(1 if bad else 0)")
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
