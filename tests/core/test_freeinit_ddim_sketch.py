"""Core maths of FreeInit re-noising, DDIM inversion and the sketch energy (no ComfyUI)."""
import math

import pytest
import torch


# ----------------------------------------------------------------------------------------------- FreeInit
def test_renoise_matches_the_forward_process(algo):
    fi = algo.freeinit
    z0, eps = torch.randn(2, 3, 4, 5, 6), torch.randn(2, 3, 4, 5, 6)
    torch.testing.assert_close(fi.renoise(z0, eps, 0.25, fi.FLOW), 0.75 * z0 + 0.25 * eps)
    torch.testing.assert_close(fi.renoise(z0, eps, 3.0, fi.VARIANCE_EXPLODING), (z0 + 3 * eps) / math.sqrt(10))
    assert torch.equal(fi.renoise(z0, eps, 1.0, fi.FLOW), eps)       # sigma = 1 keeps nothing of z0
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        fi.renoise(z0, eps, 1.5, fi.FLOW)


def test_snr_matched_flow_default(algo):
    fi = algo.freeinit
    s = fi.FLOW_SNR_MATCHED_SIGMA
    assert s == pytest.approx(0.935957, abs=1e-6)
    snr_flow = ((1 - s) / s) ** 2
    snr_vp = 1 / fi.SD_SIGMA_AT_T999 ** 2
    assert snr_flow == pytest.approx(snr_vp, rel=1e-9)
    assert fi.signal_fraction(fi.SD_SIGMA_AT_T999, fi.VARIANCE_EXPLODING) == pytest.approx(0.0683, abs=2e-4)


def test_reinitialise_low_band_from_renoised_high_band_from_fresh(algo):
    fi, sp = algo.freeinit, algo.spectral
    z0, first, fresh = (torch.randn(1, 4, 7, 8, 10) for _ in range(3))
    lpf = sp.LowPassFilter("ideal", 0.45, 0.5)
    out = fi.reinitialise(z0, first, fresh, lpf, 0.9, fi.FLOW)
    renoised = fi.renoise(z0, first, 0.9, fi.FLOW)
    torch.testing.assert_close(sp.lowpass(out, lpf), sp.lowpass(renoised, lpf), atol=1e-5, rtol=0)
    torch.testing.assert_close(out - sp.lowpass(out, lpf), fresh - sp.lowpass(fresh, lpf), atol=1e-5, rtol=0)
    everything = sp.LowPassFilter("box", 1.0, 1.0)
    torch.testing.assert_close(fi.reinitialise(z0, first, fresh, everything, 0.9, fi.FLOW), renoised, atol=1e-5,
                               rtol=0)
    nothing = sp.LowPassFilter("gaussian", 0.0, 0.25)
    assert torch.equal(fi.reinitialise(z0, first, fresh, nothing, 0.9, fi.FLOW), fresh)


def test_reinitialise_keeps_dtype_and_rejects_shape_mismatch(algo):
    fi, sp = algo.freeinit, algo.spectral
    z0 = torch.randn(1, 2, 3, 4, 4, dtype=torch.bfloat16)
    out = fi.reinitialise(z0, torch.randn(1, 2, 3, 4, 4), torch.randn(1, 2, 3, 4, 4), sp.DEFAULT_FILTER, 0.9,
                          fi.FLOW)
    assert out.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="shape"):
        fi.reinitialise(z0, torch.randn(1, 2, 3, 4, 5), torch.randn(1, 2, 3, 4, 4), sp.DEFAULT_FILTER, 0.9, fi.FLOW)


def test_coarse_to_fine_steps_follow_the_official_schedule(algo):
    fi = algo.freeinit
    # the official pipeline (use_fast_sampling): iteration i of num_iters runs int(N / num_iters * (i + 1)) steps
    official = lambda steps, i, passes: int(steps / passes * (i + 1))
    assert [fi.coarse_to_fine_steps(25, i, 3) for i in range(3)] == [8, 16, 25]
    assert [fi.coarse_to_fine_steps(20, i, 3) for i in range(3)] == [6, 13, 20]
    for steps in range(1, 61):
        for passes in range(1, 7):
            got = [fi.coarse_to_fine_steps(steps, i, passes) for i in range(passes)]
            assert got[-1] == steps and min(got) >= 1
            assert got[:-1] == [max(1, official(steps, i, passes)) for i in range(passes - 1)]


def test_resampled_schedule_keeps_end_points_and_shape(algo):
    fi = algo.freeinit
    shift = 8.0
    t = torch.linspace(1, 0, 31)
    sigmas = shift * t / (1 + (shift - 1) * t)
    short = fi.resample_schedule(sigmas, 10)
    assert short.numel() == 11
    assert short[0] == sigmas[0] and short[-1] == 0
    assert bool((short[1:] < short[:-1]).all())
    # every third entry of a 30-step schedule is exactly a 10-step resampling of it
    torch.testing.assert_close(short, sigmas[::3])
    assert fi.resample_schedule(sigmas, 30) is sigmas


# ----------------------------------------------------------------------------------------------- DDIM
class GaussianData:
    """x0 ~ N(mean, std^2) elementwise: the exact denoiser is known in closed form for both sigma spaces."""

    def __init__(self, kind, mean=0.3, std=0.8):
        self.kind, self.mean, self.std = kind, mean, std

    def denoise(self, x, sigma):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        m, v = self.mean, self.std ** 2
        if self.kind == "flow":
            a = 1 - s
            return m + a * v / (a * a * v + s * s) * (x - a * m)
        return m + v / (v + s * s) * (x - m)


def euler_sample(algo, x, sigmas, denoise):
    for i in range(len(sigmas) - 1):
        s = sigmas[i:i + 1].expand(x.shape[0])
        x = algo.ddim.euler_step(x, denoise(x, s), sigmas[i], sigmas[i + 1])
    return x


def invert(algo, x, sigmas, denoise, kind, refine):
    asc = algo.ddim.ascending(sigmas)
    for i in range(len(asc) - 1):
        x = algo.ddim.inversion_step(x, float(asc[i]), float(asc[i + 1]), denoise, kind, refine)
    return x


def flow_schedule(steps, shift=8.0):
    t = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return shift * t / (1 + (shift - 1) * t)


def ve_schedule(steps, sigma_max=14.6, sigma_min=0.03):
    # Karras-like: a smooth VE schedule ending in 0
    rho = 7.0
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    s = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, s.new_zeros(1)])


def round_trip_error(algo, kind, steps, refine, shift=8.0, data=None, inverse=None):
    data = data or GaussianData(kind)
    gen = torch.Generator().manual_seed(0)
    x0 = data.mean + data.std * torch.randn(2, 4, 3, 6, 6, generator=gen, dtype=torch.float64)
    fi = algo.freeinit
    param = fi.FLOW if kind == "flow" else fi.VARIANCE_EXPLODING
    sigmas = flow_schedule(steps, shift) if kind == "flow" else ve_schedule(steps)
    if inverse is None:
        z = invert(algo, x0, sigmas, data.denoise, param, refine)
    else:
        z = x0
        asc = sigmas.flip(0)
        for i in range(steps):
            z = inverse(z, float(asc[i]), float(asc[i + 1]), data.denoise)
    back = euler_sample(algo, z, sigmas, data.denoise)
    return float((back - x0).norm() / x0.norm())


def heterogeneous(kind):
    """Gaussian data whose per-element std spreads over 0.15..1.35: the denoiser's Jacobian has a spread-out
    spectrum, so fixed-point refinement converges slowly in the low-variance directions."""
    gen = torch.Generator().manual_seed(7)
    shape = (4, 3, 6, 6)
    return GaussianData(kind, mean=0.6 * torch.randn(shape, generator=gen, dtype=torch.float64),
                        std=0.15 + 1.2 * torch.rand(shape, generator=gen, dtype=torch.float64))


# References written from diffusers' DDIMInverseScheduler.step (Apache-2.0), the inversion the official FADE code
# runs: the model is queried at the next (noisier) timestep with the current sample, its output is split into
# (x0, eps) with the CURRENT timestep's coefficients, and the sample is re-diffused with the next ones.
def inverse_ddim_velocity_model(x, s, s_next, denoise):
    """Flow path x_t = alpha x0 + sigma eps with alpha = 1 - t, sigma = t and a velocity model v = eps - x0."""
    x0_hat = denoise(x, torch.full((x.shape[0],), s_next, dtype=x.dtype))
    eps_hat = (x - (1 - s_next) * x0_hat) / s_next
    v = eps_hat - x0_hat                                   # what a velocity model outputs at (x, s_next)
    alpha, sigma = 1 - s, s                                 # split at the current level: solve
    x0 = (x - sigma * v) / (alpha + sigma)                 # x = alpha x0 + sigma eps,  v = eps - x0
    eps = x0 + v
    return (1 - s_next) * x0 + s_next * eps


def inverse_ddim_eps_model(x, s, s_next, denoise):
    """VP scheduler with alphas_cumprod = 1 / (1 + sigma^2) and an eps model, in ComfyUI's VE latent units."""
    abar, abar_next = 1 / (1 + s * s), 1 / (1 + s_next * s_next)
    sample = x * math.sqrt(abar)                           # the VP latent at the current timestep
    q = sample / math.sqrt(abar_next)                      # the model sees it at the next timestep (VE units)
    eps = (q - denoise(q, torch.full((x.shape[0],), s_next, dtype=x.dtype))) / s_next
    x0 = (sample - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    prev = math.sqrt(abar_next) * x0 + math.sqrt(1 - abar_next) * eps
    return prev / math.sqrt(abar_next)


@pytest.mark.parametrize("kind, reference", [("flow", inverse_ddim_velocity_model), ("ve", inverse_ddim_eps_model)])
def test_plain_inversion_step_is_diffusers_inverse_ddim(algo, kind, reference):
    fi = algo.freeinit
    data = heterogeneous(kind)
    x = torch.randn(2, 4, 3, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    levels = [(0.0, 0.47), (0.3, 0.6), (0.9, 1.0)] if kind == "flow" else [(0.0, 0.5), (2.0, 3.5), (8.0, 14.6)]
    for s, s_next in levels:
        got = algo.ddim.inversion_step(x, s, s_next, data.denoise, fi.FLOW if kind == "flow" else
                                       fi.VARIANCE_EXPLODING, refine=0)
        torch.testing.assert_close(got, reference(x, s, s_next, data.denoise), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind, shift, reference", [("flow", 8.0, inverse_ddim_velocity_model),
                                                    ("flow", 1.0, inverse_ddim_velocity_model),
                                                    ("ve", None, inverse_ddim_eps_model)])
def test_plain_inversion_round_trip_matches_the_official_scheme_and_is_first_order(algo, kind, shift, reference):
    error = lambda n, **kw: round_trip_error(algo, kind, n, 0, shift=shift, **kw)
    e50, want50 = error(50), error(50, inverse=reference)
    assert abs(e50 - want50) <= 0.1 * want50
    assert want50 < (0.03 if shift != 1.0 else 0.015)     # flow shift 8: 2.5 %, shift 1: 1.1 %, eps: 2.5 %
    e100, e200 = error(100), error(200)
    assert 1.5 < e50 / e100 < 2.5 and 1.5 < e100 / e200 < 2.5       # about 1/steps


@pytest.mark.parametrize("kind, shift", [("flow", 8.0), ("flow", 1.0), ("ve", None)])
def test_refine_solves_the_exact_inverse_of_the_sampler_step(algo, kind, shift):
    error = lambda n, r, **kw: round_trip_error(algo, kind, n, r, shift=shift, **kw)
    assert error(50, 4) <= 1e-5
    assert error(10, 4) <= 1e-3                     # the large first step (0 -> 0.47 at shift 8) converges too
    # A spread-out Jacobian spectrum: slower, but each refinement still helps (Anderson-accelerated).
    spread = [error(50, r, data=heterogeneous(kind)) for r in (0, 1, 2, 4)]
    assert spread[0] > spread[1] > spread[2] > spread[3]
    assert spread[3] <= 1e-4


def test_inversion_reaches_pure_noise_level_on_flow_without_dividing_by_zero(algo):
    data = GaussianData("flow")
    x0 = torch.randn(1, 2, 2, 4, 4, dtype=torch.float64)
    z = invert(algo, x0, flow_schedule(12), data.denoise, algo.freeinit.FLOW, 2)
    assert torch.isfinite(z).all()
    # at sigma = 1 the latent is the noise estimate; for Gaussian data that noise is unit variance-ish
    assert 0.3 < float(z.std()) < 3.0


def test_inversion_needs_an_ascending_step(algo):
    with pytest.raises(ValueError, match="ascending"):
        algo.ddim.inversion_step(torch.zeros(1, 1, 1, 1, 1), 0.5, 0.4, lambda x, s: x, algo.freeinit.FLOW)


def test_euler_step_is_ddim_in_both_spaces(algo):
    ddim, fi = algo.ddim, algo.freeinit
    x, x0 = torch.randn(1, 2, 3, 4, 4, dtype=torch.float64), torch.randn(1, 2, 3, 4, 4, dtype=torch.float64)
    for kind, s, s_next in ((fi.FLOW, 0.8, 0.5), (fi.VARIANCE_EXPLODING, 5.0, 2.0)):
        eps = ddim.noise_estimate(x, x0, s, kind)
        want = ddim.diffuse(x0, eps, s_next, kind)
        got = ddim.euler_step(x, x0, torch.tensor(s, dtype=torch.float64), torch.tensor(s_next, dtype=torch.float64))
        torch.testing.assert_close(got, want)


# ----------------------------------------------------------------------------------------------- sketch energy
def test_tokens_to_grid_inverts_row_major_flattening(algo):
    sk = algo.sketch
    grid = torch.randn(2, 5, 3, 4, 6)                          # [B, D, T, H, W]
    tokens = grid.flatten(2).transpose(1, 2)                    # [B, T*H*W, D]
    extra = torch.randn(2, 7, 5)
    torch.testing.assert_close(sk.tokens_to_grid(torch.cat([extra, tokens], 1), (3, 4, 6), sk.TOKENS, 7), grid)
    torch.testing.assert_close(sk.tokens_to_grid(torch.cat([tokens, extra], 1), (3, 4, 6)), grid)
    torch.testing.assert_close(sk.tokens_to_grid(grid.permute(2, 3, 4, 0, 1), (3, 4, 6), sk.GRID_THWBD), grid)
    torch.testing.assert_close(sk.tokens_to_grid(grid.permute(0, 2, 3, 4, 1), (3, 4, 6), sk.GRID_BTHWD), grid)
    with pytest.raises(ValueError, match="fewer"):
        sk.tokens_to_grid(tokens[:, :10], (3, 4, 6))


@pytest.mark.parametrize("spectrum", ["2d", "3d"])
@pytest.mark.parametrize("kind", ["gaussian", "box", "ideal"])
@pytest.mark.parametrize("width", [6, 7])
def test_energy_equals_mean_squared_difference_of_low_passed_features(algo, spectrum, kind, width):
    """Parseval: the kept-bin spectral energy equals the token-domain MSE of the low-passed features."""
    sk, sp = algo.sketch, algo.spectral
    grid = (3, 5, width)
    lpf = sp.LowPassFilter(kind, 0.6, 0.5)
    band = sk.band_selection(lpf, grid, spectrum, "cpu")
    f, g = torch.randn(2, 4, *grid, dtype=torch.float64), torch.randn(2, 4, *grid, dtype=torch.float64)
    energy = sk.sketch_energy([f], [sk.low_band(g, band, spectrum)], [band], spectrum)
    if spectrum == "3d":
        want = (sp.lowpass(f, lpf) - sp.lowpass(g, lpf)).pow(2).mean()
    else:   # per frame: the mask of a one-frame grid
        lp = lambda v: torch.stack([sp.lowpass(v[:, :, i:i + 1], lpf)[:, :, 0] for i in range(grid[0])], 2)
        want = (lp(f) - lp(g)).pow(2).mean()
    assert float(energy) == pytest.approx(float(want), rel=1e-4, abs=1e-9)


def test_energy_gradient_matches_finite_differences(algo):
    sk, sp = algo.sketch, algo.spectral
    grid = (2, 4, 5)
    lpf = sp.LowPassFilter("gaussian", 0.4, 0.4)
    band = sk.band_selection(lpf, grid, "3d", "cpu")
    ref = sk.low_band(torch.randn(1, 3, *grid, dtype=torch.float64), band, "3d")
    f = torch.randn(1, 3, *grid, dtype=torch.float64, requires_grad=True)
    energy = lambda v: sk.sketch_energy([v], [ref], [band], "3d")
    (grad,) = torch.autograd.grad(energy(f), f)
    direction = torch.randn_like(f)
    h = 1e-6
    fd = (energy(f.detach() + h * direction) - energy(f.detach() - h * direction)) / (2 * h)
    assert float((grad * direction).sum()) == pytest.approx(float(fd), rel=1e-6)


def test_normalisations(algo):
    sk = algo.sketch
    g = torch.randn(2, 3, 4, 5, 6)
    unit = sk.unit_direction(g)
    torch.testing.assert_close(unit.pow(2).mean(dim=(1, 2, 3, 4)), torch.ones(2))
    cfg = torch.randn_like(g) * 10
    norm = lambda v: v.flatten(1).norm(dim=1)
    tiny = sk.cfg_relative(g * 1e-6, cfg, 1.0, 0.33, 3.0)
    torch.testing.assert_close(norm(tiny) / norm(cfg), torch.full((2,), 0.33))          # amplified to the floor
    huge = sk.cfg_relative(g, cfg, 5000.0, 0.33, 3.0)
    torch.testing.assert_close(norm(huge) / norm(cfg), torch.full((2,), 3.0))           # clipped to the ceiling
    mid = sk.cfg_relative(g, cfg * 0 + g * 1.0, 1.0, 0.33, 3.0)
    torch.testing.assert_close(mid, g)                                                  # in range: unchanged
    assert sk.guided_step_count(50, 0.6) == 30


def test_mask_to_latent_grid_groups_frames_like_a_causal_vae(algo):
    sk = algo.sketch
    mask = torch.zeros(9, 32, 32)
    mask[5, 8:12, 20:24] = 1.0                       # frame 5 -> latent frame 2 of (9 - 1) / 4 + 1 = 3
    keep = sk.mask_to_latent_grid(mask, (3, 4, 4), dilate=False)
    assert keep.shape == (3, 4, 4)
    assert keep[2].sum() == 1 and keep[0].sum() == 0 and keep[1].sum() == 0
    assert keep[2, 1, 2] == 1
    assert sk.mask_to_latent_grid(mask, (3, 4, 4))[2].sum() == 9     # 3x3 dilation
    blended = sk.blend_toward_source(torch.ones(1, 1, 3, 4, 4), torch.zeros(1, 1, 3, 4, 4), keep[None, None])
    assert torch.equal(blended[0, 0], keep)


def test_euler_descent_is_the_samplers_path_and_round_trips_an_exact_inversion(algo):
    data = GaussianData("flow")
    sigmas = flow_schedule(50)
    x0 = data.mean + data.std * torch.randn(2, 4, 3, 6, 6, generator=torch.Generator().manual_seed(3),
                                            dtype=torch.float64)
    z = invert(algo, x0, sigmas, data.denoise, algo.freeinit.FLOW, 4)
    steps = []
    back = algo.ddim.euler_descent(z, sigmas, data.denoise, on_step=steps.append)
    torch.testing.assert_close(back, euler_sample(algo, z, sigmas, data.denoise), rtol=0, atol=0)
    assert len(steps) == 50 and torch.equal(steps[-1], back)
    error = algo.ddim.relative_error(back, x0)
    assert error.shape == (2,) and float(error.max()) < 1e-5
    plain = algo.ddim.relative_error(algo.ddim.euler_descent(invert(algo, x0, sigmas, data.denoise,
                                                                    algo.freeinit.FLOW, 0), sigmas, data.denoise), x0)
    assert float(plain.min()) > 1e-3                 # the check tells the two apart


def test_choose_per_item_takes_the_second_only_where_asked(algo):
    a, b = torch.zeros(3, 2, 1, 2, 2), torch.ones(3, 2, 1, 2, 2)
    out = algo.ddim.choose_per_item(torch.tensor([False, True, False]), a, b)
    assert out[:, 0, 0, 0, 0].tolist() == [0.0, 1.0, 0.0]
    assert algo.ddim.relative_error(b, b).tolist() == [0.0, 0.0, 0.0]

