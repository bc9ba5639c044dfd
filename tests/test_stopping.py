"""ES-WMV: the sliding statistic is the exact windowed variance; selection and patience."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from dip_cli.operators import simulate_noise
from dip_cli.stopping import WindowedVariance, estimate_noise_variance
from tests.conftest import real_crop


def exact_wmv(outputs: list[torch.Tensor]) -> float:
    stacked = torch.stack([o.flatten() for o in outputs]).double()
    return float(stacked.var(dim=0, unbiased=False).mean())


def test_sliding_statistic_equals_the_exact_windowed_variance():
    torch.manual_seed(0)
    rule = WindowedVariance(window=7, patience=None)
    outputs = [0.5 + 0.01 * torch.randn(1, 3, 5, 6) + 0.001 * i for i in range(40)]
    for i, out in enumerate(outputs):
        value = float(rule.update(i, out, out))
        if i < 6:
            assert math.isnan(value)
        else:
            assert math.isclose(value, exact_wmv(outputs[i - 6 : i + 1]), rel_tol=1e-4)


def test_keeps_the_output_at_the_minimum_and_stops_after_patience():
    # Outputs converge until step 30, then wander off (as when the network fits noise).
    rule = WindowedVariance(window=5, patience=10, warmup=0)
    torch.manual_seed(0)
    stopped_at = None
    for i in range(100):
        spread = 1.0 / (i + 1) if i <= 30 else 0.03 * (i - 29)
        out = torch.rand(1, 1, 4, 4) * spread
        marker = torch.full((1, 1, 4, 4), float(i))
        rule.update(i, out, marker)
        if rule.should_stop(i + 1):
            stopped_at = i + 1
            break
    best = rule.selected_iteration
    assert best is not None and 25 <= best <= 32
    assert float(rule.best_image[0, 0, 0, 0]) == best  # the candidate of that very step
    assert stopped_at == best + 10


def test_fixed_budget_mode_measures_but_never_stops():
    rule = WindowedVariance(window=3, patience=None)
    for i in range(20):
        rule.update(i, torch.full((1, 1, 2, 2), float(i % 2)), torch.zeros(1, 1, 2, 2))
        assert not rule.should_stop(i + 1)


def test_warmup_ignores_early_minima():
    rule = WindowedVariance(window=2, patience=5, warmup=10)
    for i in range(12):
        rule.update(i, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert rule.selected_iteration == 10


def test_memory_is_bounded_on_large_images():
    rule = WindowedVariance(window=4, patience=None, max_values=1000)
    big = torch.rand(1, 3, 100, 100)
    rule.update(0, big, big)
    assert rule.buffer.shape == (4, 1000)


def test_resume_while_the_window_is_still_filling():
    first = WindowedVariance(window=6, patience=3)
    outputs = [torch.full((1, 1, 2, 2), 0.1 * i) for i in range(10)]
    for i in range(3):
        first.update(i, outputs[i], outputs[i])
    resumed = WindowedVariance(window=6, patience=3)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))  # as torch.save + load would
    straight = first
    for i in range(3, 10):
        a, b = straight.update(i, outputs[i], outputs[i]), resumed.update(i, outputs[i], outputs[i])
        assert (math.isnan(a) and math.isnan(b)) or float(a) == float(b)


def test_an_output_that_is_not_eligible_is_never_kept():
    # The variance is lowest early (steps 0-9, constant outputs) but those steps are not
    # eligible: what is kept is the minimum among the eligible steps (10+), and patience counts
    # from there, not from the ineligible minimum.
    rule = WindowedVariance(window=2, patience=5, warmup=0)
    torch.manual_seed(0)
    for i in range(30):
        spread = 0.0 if i < 10 else 0.1 + 0.01 * abs(i - 15)
        out = torch.rand(1, 1, 3, 3) * spread
        rule.update(i, out, torch.full((1, 1, 3, 3), float(i)), torch.tensor(i >= 10))
    assert 10 <= rule.selected_iteration <= 20
    assert float(rule.best_image[0, 0, 0, 0]) == rule.selected_iteration
    assert not rule.should_stop(rule.selected_iteration + 4)
    assert rule.should_stop(rule.selected_iteration + 5)


def test_nothing_eligible_selects_nothing():
    rule = WindowedVariance(window=2, patience=3, warmup=0)
    for i in range(10):
        rule.update(i, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.tensor(False))
    assert rule.selected_iteration is None and not rule.should_stop(10)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_the_noise_estimate_is_close_to_the_true_noise_on_real_crops(name, sigma):
    clean = real_crop(name, 128)
    noisy = simulate_noise(clean, sigma, seed=1)
    true = float(np.mean((noisy - clean) ** 2))  # clipping at 0 and 1 makes it a little less than sigma^2
    assert 0.85 * true < estimate_noise_variance(noisy) < 1.15 * true


@pytest.mark.parametrize("sigma", [10, 25])
def test_the_noise_estimate_is_not_fooled_by_fine_regular_texture(sigma):
    """Fine stripes (a cloth's weave) are detail at the finest scale, which a wavelet estimate
    (Donoho's, scikit-image's estimate_sigma) reads as noise: 6.6x the true variance here at
    sigma 25, 36x at 10, so the stop's floor would let a fit stop long before it learnt the
    texture. In patch space stripes span a few directions, so the patch-PCA estimate is not
    fooled."""
    rows, cols = np.mgrid[:128, :128]
    weave = 0.5 + 0.3 * np.sin(2 * np.pi * (rows + cols) / 3.3) * (0.6 + 0.4 * np.sin(cols / 17))
    clean = weave[..., None].astype(np.float32)
    noisy = simulate_noise(clean, sigma, seed=1)
    true = float(np.mean((noisy - clean) ** 2))
    assert 0.9 * true < estimate_noise_variance(noisy) < 1.1 * true
    assert 0.9 * true < estimate_noise_variance(noisy[..., 0]) < 1.1 * true  # 2-D works too


def test_the_noise_estimate_of_a_tiny_or_flat_image_is_a_small_number():
    assert estimate_noise_variance(np.zeros((5, 7, 3), np.float32)) == 0.0
    noisy = simulate_noise(np.full((6, 6, 1), 0.5, np.float32), 25, seed=0)
    assert 0 < estimate_noise_variance(noisy) < 2 * (25 / 255) ** 2
