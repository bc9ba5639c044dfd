"""`loss-surface`: stacked training equals one net at a time, the verdicts, and a quick run."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dip_cli.errors import InputError
from dip_cli.experiments import loss_surface as ls
from dip_cli.experiments.datasets import load_digits


def _reference_net(nets: ls.Nets, i: int) -> torch.nn.Sequential:
    """Net ``i`` of the stack as a plain torch.nn model with the same weights."""
    first, second = torch.nn.Linear(*nets.w1.shape[1:]), torch.nn.Linear(*nets.w2.shape[1:])
    with torch.no_grad():
        first.weight.copy_(nets.w1[i].T)
        first.bias.copy_(nets.b1[i, 0])
        second.weight.copy_(nets.w2[i].T)
        second.bias.copy_(nets.b2[i, 0])
    return torch.nn.Sequential(first, torch.nn.ReLU(), second)


def _train_alone(net: torch.nn.Sequential, x, y, epochs: int, seed: int) -> None:
    """torch.optim.SGD on one net, the same batches and learning rates as ``ls.train``."""
    optimizer = torch.optim.SGD(net.parameters(), lr=ls.LR, momentum=ls.MOMENTUM)
    order = torch.Generator().manual_seed(seed)
    steps, step = epochs * math.ceil(len(y) / ls.BATCH), 0
    for _ in range(epochs):
        for batch in ls.batch_order(len(y), order):
            optimizer.param_groups[0]["lr"] = ls.learning_rate(step, steps)
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1


def test_stacked_training_equals_training_one_by_one():
    torch.set_num_threads(1)
    data = load_digits(0)
    x, y = torch.as_tensor(data.x_train[:300]), torch.as_tensor(data.y_train[:300])
    nets = ls.init_nets(5, 64, 7, 10, torch.Generator().manual_seed(1))
    alone = [_reference_net(nets, i) for i in range(len(nets))]
    start = nets.w1.detach().clone()

    ls.train(nets, x, y, epochs=3, seed=4)  # 5 batches an epoch: 15 steps
    for net in alone:
        _train_alone(net, x, y, epochs=3, seed=4)

    assert (nets.w1 - start).abs().max() > 1e-2  # the weights did move
    for i, net in enumerate(alone):
        assert torch.allclose(nets.w1[i], net[0].weight.T, atol=1e-5)
        assert torch.allclose(nets.b1[i, 0], net[0].bias, atol=1e-5)
        assert torch.allclose(nets.w2[i], net[2].weight.T, atol=1e-5)
        assert torch.allclose(nets.b2[i, 0], net[2].bias, atol=1e-5)
        with torch.no_grad():
            assert torch.allclose(nets(x)[i], net(x), atol=1e-5)


def test_per_net_loss_is_each_nets_own_cross_entropy():
    logits = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[i], y) for i in range(3)])
    assert torch.allclose(ls.per_net_loss(logits, y), expected, atol=1e-6)


def test_learning_rate_anneals_from_lr_to_zero():
    assert ls.learning_rate(0, 100) == pytest.approx(ls.LR)
    assert ls.learning_rate(50, 100) == pytest.approx(ls.LR / 2)
    assert ls.learning_rate(100, 100) == pytest.approx(0, abs=1e-12)


# --- verdicts on made-up losses --------------------------------------------------------------


def _final(centre: float, width: float, seed: int) -> dict[str, np.ndarray]:
    """100 made-up nets: losses uniform in centre +- width/2 (p95 - p5 = 0.9 width)."""
    rng = np.random.default_rng(seed)
    spread = np.linspace(-0.5, 0.5, 100) * width
    return {
        "train_loss": centre / 2 + spread,
        "test_loss": centre + rng.permutation(spread),
        "test_accuracy": np.full(100, 90.0),
    }


def _held(final) -> dict[str, bool]:
    return {v.finding: v.held for v in ls.judge(final)[1]}


def test_judge_holds_when_large_nets_agree_and_lie_lower():
    figures, verdicts = ls.judge({2: _final(1.5, 1.0, 0), 16: _final(0.5, 0.4, 1), 256: _final(0.2, 0.1, 2)})
    assert all(v.held for v in verdicts) and len(verdicts) == 3
    assert figures["H=2: test loss p95-p5"] == pytest.approx(0.9, rel=1e-6)
    assert figures["test loss spread, H=256 / H=2"] == pytest.approx(0.1, rel=1e-6)
    assert figures["median test loss, H=256 / H=2"] == pytest.approx(0.2 / 1.5)


def test_judge_does_not_hold_when_spreads_stay_or_medians_rise():
    held = _held({2: _final(1.0, 1.0, 0), 256: _final(1.2, 0.5, 1)})
    assert held == {
        "train losses narrow as the net grows": False,  # 0.5x > 1/3
        "test losses narrow as the net grows": False,
        "large nets' minima lie lower": False,  # 1.2 > 1.0
    }
    held = _held({4: _final(1.0, 1.0, 0), 64: _final(0.9, 0.34, 1)})  # just above a third
    assert not held["test losses narrow as the net grows"] and held["large nets' minima lie lower"]


def test_judge_nan_losses_are_not_held():
    broken = _final(0.2, 0.1, 2)
    broken["test_loss"][0] = math.nan
    held = _held({2: _final(1.5, 1.0, 0), 256: broken})
    assert held["train losses narrow as the net grows"]
    assert not held["test losses narrow as the net grows"] and not held["large nets' minima lie lower"]


# --- runs ------------------------------------------------------------------------------------


def test_quick_run_writes_results_csv_and_plot(tmp_path):
    cfg = replace(ls.Config(), **ls.QUICK, out=tmp_path)
    calls = []
    result = ls.run(cfg, progress=lambda label, done, total: calls.append((done, total)))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiment"] == "loss-surface" and len(results["verdicts"]) == 3
    assert results["all_held"] == all(v["held"] for v in results["verdicts"])
    assert results["settings"]["widths"] == list(ls.QUICK["widths"])
    with open(result.paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(ls.COLUMNS)
    epochs = ls.QUICK["epochs"]
    # Every net recorded at the start and after each epoch (fewer epochs than curve points).
    assert len(rows) == len(ls.QUICK["widths"]) * ls.QUICK["inits"] * (epochs + 1)
    last = [r for r in rows if int(r["epoch"]) == epochs]
    assert all(float(r["test_loss"]) > 0 and 0 <= float(r["test_accuracy"]) <= 100 for r in last)
    plot = result.paths["plot"].read_bytes()
    assert plot[:8] == b"\x89PNG\r\n\x1a\n" and len(plot) < 150_000
    total = len(ls.QUICK["widths"]) * epochs
    assert calls[-1] == (total, total) and all(d <= t for d, t in calls)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"data": "mnist"}, "--data must be one of digits, breast-cancer"),
        ({"widths": (8,)}, "--width needs at least two different widths"),
        ({"widths": (0, 8)}, "--width needs at least two different widths"),
        ({"inits": 1}, "--inits must be >= 2"),
        ({"epochs": 0}, "--epochs >= 1"),
    ],
)
def test_bad_config_is_an_input_error_before_writing(tmp_path, given, message):
    cfg = replace(ls.Config(), **ls.QUICK, out=tmp_path / "out")
    with pytest.raises(InputError, match=message):
        ls.run(replace(cfg, **given))
    assert not (tmp_path / "out").exists()
