"""Splitting a schedule between Wan 2.2 A14B's two experts (algo/experts.py, no ComfyUI)."""
import importlib

import pytest
import torch


@pytest.fixture(scope="module")
def experts(algo):
    return importlib.import_module(f"{algo.__name__}.experts")


def flow_schedule(steps, shift):
    """ComfyUI's 'simple' schedule of a shifted flow model (ModelSamplingSD3), descending to 0."""
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[:-1]
    s = shift * t / (1 + (shift - 1) * t)
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)]).float()


@pytest.mark.parametrize("steps", [1, 2, 7, 20, 40])
@pytest.mark.parametrize("shift,boundary", [(12.0, 0.875), (5.0, 0.9), (8.0, 0.875)])
def test_high_expert_takes_exactly_the_steps_starting_at_or_above_the_boundary(experts, steps, shift, boundary):
    sigmas = flow_schedule(steps, shift)
    split = experts.split_step(sigmas, boundary)
    assert all(float(s) >= boundary for s in sigmas[:split])
    assert all(float(s) < boundary for s in sigmas[split:-1])
    names = [experts.expert_for_sigma(s, boundary) for s in sigmas[:-1]]
    assert names == [experts.HIGH] * split + [experts.LOW] * (steps - split)


def test_split_points_of_common_settings(experts):
    # On this schedule: T2V shift 12 at 40 steps switches at step 26; ComfyUI's 20-step shift-8 template graph
    # (which hard-codes step 10) would switch at 11; I2V shift 5 with boundary 0.9 at 8 of 20.
    assert experts.split_step(flow_schedule(40, 12.0), 0.875) == 26
    assert experts.split_step(flow_schedule(20, 8.0), 0.875) == 11
    assert experts.split_step(flow_schedule(20, 5.0), 0.9) == 8


def test_edge_cases(experts):
    sigmas = torch.tensor([0.95, 0.875, 0.5, 0.0])
    assert experts.split_step(sigmas, 0.875) == 2          # a step starting exactly at the boundary is high
    assert experts.split_step(sigmas, 0.99) == 0           # the low expert samples everything
    assert experts.split_step(sigmas, 0.4) == 3            # the high expert samples everything
    assert experts.split_step(torch.tensor([0.6, 0.3, 0.0]), 0.875) == 0   # a partial (vid2vid) schedule
