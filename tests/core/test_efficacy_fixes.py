"""The fix the efficacy benchmark (bench/efficacy/) led to: FreeInit's later passes start at the sigma they were
re-noised to. (A residual-based convergence check for DDIM Invert's refine iteration was tried and reverted: on
the trained model it lowered the round trip, see the README's measured-effect section.)"""
import math

import pytest
import torch


def test_start_schedule_keeps_the_step_count_and_the_curve(algo):
    fi = algo.freeinit
    t = torch.linspace(1, 0, 21, dtype=torch.float64)
    sigmas = 3 * t / (1 + 2 * t)                   # flow, shift 3
    out = fi.start_schedule(sigmas, fi.FLOW_SNR_MATCHED_SIGMA)
    assert out.numel() == sigmas.numel() and float(out[0]) == pytest.approx(fi.FLOW_SNR_MATCHED_SIGMA)
    assert float(out[-1]) == 0.0 and bool((out[1:] < out[:-1]).all())
    # every point lies on the original piecewise-linear curve (same shape, only the start moved)
    for value in out[1:-1].tolist():
        i = int(torch.nonzero(sigmas < value).flatten()[0]) - 1
        assert float(sigmas[i]) >= value > float(sigmas[i + 1])
    assert fi.start_schedule(sigmas, 1.0) is sigmas
    assert fi.start_schedule(sigmas, float(sigmas[0]) * (1 - 1e-9)) is sigmas     # EPS: t = 999 is the top


def test_latent_from_noise_units_inverts_renoise(algo):
    fi = algo.freeinit
    z0, eps = torch.randn(1, 2, 3, 4, 4), torch.randn(1, 2, 3, 4, 4)
    for sigma, kind, latent in ((0.936, fi.FLOW, 0.064 * z0 + 0.936 * eps), (14.6, fi.VARIANCE_EXPLODING,
                                                                              z0 + 14.6 * eps)):
        units = fi.renoise(z0, eps, sigma, kind)
        torch.testing.assert_close(fi.latent_from_noise_units(units, sigma, kind), latent, atol=1e-4, rtol=1e-5)
    assert math.isclose(float(fi.latent_from_noise_units(torch.ones(1), 3.0, fi.VARIANCE_EXPLODING)),
                        math.sqrt(10), rel_tol=1e-6)
