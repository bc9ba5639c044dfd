"""`dip experiment optimizers`: straight paths between solutions, the 2-D slice, the verdicts."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
import torch

from dip_cli.errors import InputError
from dip_cli.experiments import optimizers
from dip_cli.experiments.datasets import load_data
from dip_cli.experiments.optimizers import (
    PAIRS,
    SOLUTIONS,
    SWITCH_PAIR,
    Config,
    Measured,
    barrier,
    init_weights,
    judge,
    path_losses,
    path_name,
    plane_slice,
)

SIZES = (8, 16, 16, 3)


def _toy_data(n: int = 60):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, SIZES[0], generator=generator), torch.randint(
        0, SIZES[-1], (n,), generator=generator
    )


def _direct_loss(seed: int, x, y) -> float:
    """The loss of init_weights(SIZES, seed) computed by torch.nn itself, not by our flat nets."""
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(a, b) for a, b in itertools.pairwise(SIZES)]
    net = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(net(x), y))


def test_path_ends_are_the_two_solutions_losses():
    x, y = _toy_data()
    a, b = init_weights(SIZES, 0), init_weights(SIZES, 1)
    alphas, losses, _ = path_losses(a, b, x, y, SIZES, 9)
    assert float(alphas[0]) == 0 and float(alphas[-1]) == 1 and len(losses) == 9
    assert float(losses[0]) == pytest.approx(_direct_loss(0, x, y), rel=1e-5)
    assert float(losses[-1]) == pytest.approx(_direct_loss(1, x, y), rel=1e-5)


def test_barrier_is_the_rise_above_the_higher_end():
    assert barrier([0.1, 0.5, 0.2]) == pytest.approx(0.3)
    assert barrier([0.3, 0.2, 0.1]) == 0  # falls all the way: no barrier
    assert barrier(torch.tensor([0.2, 0.2, 0.2])) == 0


def test_plane_slice_keeps_the_distances_between_the_three_points():
    x, y = _toy_data()
    a, b, c = (init_weights(SIZES, seed) for seed in (0, 1, 2))
    grid = plane_slice(a, b, c, x, y, SIZES, 5)
    assert grid["loss"].shape == (5, 5) and (grid["loss"] > 0).all()
    marks = list(grid["marks"].values())
    assert marks[0] == (0.0, 0.0) and marks[1][1] == 0.0
    assert marks[1][0] == pytest.approx(float((b - a).norm()), rel=1e-4)
    assert (marks[2][0] ** 2 + marks[2][1] ** 2) ** 0.5 == pytest.approx(float((c - a).norm()), rel=1e-4)
    for mx, my in marks:  # every point inside the slice
        assert grid["x"][0] <= mx <= grid["x"][-1]
        assert grid["y"][0] <= my <= grid["y"][-1]


def _measured(pair_barriers: list[float], switch_barrier: float, accuracies: list[float]) -> Measured:
    paths = [path_name(a, b) for a, b in (*PAIRS, SWITCH_PAIR)]
    return Measured(
        barrier={p: [v] for p, v in zip(paths, [*pair_barriers, switch_barrier], strict=True)},
        distance={p: [5.0] for p in paths},
        train_loss={s: [0.001] for s in SOLUTIONS},
        test_accuracy={s: [v] for s, v in zip(SOLUTIONS, accuracies, strict=True)},
    )


def test_judge_holds_on_distinct_minima_and_close_accuracies():
    figures, verdicts = judge(_measured([0.5, 0.0, 0.2], 0.15, [97.0, 97.5, 98.0, 96.5, 97.0]))
    assert [v.held for v in verdicts] == [True, True, True]
    assert verdicts[0].measured == pytest.approx(0.2)  # the second highest of three
    assert figures["test accuracy spread, max − min (points)"] == pytest.approx(1.5)


def test_judge_not_held_on_connected_solutions_and_spread_accuracies():
    _, verdicts = judge(_measured([0.5, 0.01, 0.002], 0.0, [97.0, 94.0, 98.0, 97.0, 97.0]))
    assert [v.held for v in verdicts] == [False, False, False]
    assert verdicts[2].measured == pytest.approx(4.0)


def test_judge_takes_medians_over_seeds():
    measured = _measured([0.5, 0.5, 0.5], 0.5, [97.0] * 5)
    measured.barrier[path_name(*SWITCH_PAIR)] = [0.0, 0.3, 0.02]
    _, verdicts = judge(measured)
    assert verdicts[1].measured == pytest.approx(0.02) and not verdicts[1].held


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"data": "mnist"}, "--data must be one of"),
        ({"epochs": 3}, "--epochs must be >= 4"),
        ({"grid": 2}, "--grid"),
    ],
)
def test_bad_config_is_an_input_error(tmp_path, given, message):
    cfg = Config(out=tmp_path / "out", **{**optimizers.QUICK, **given})
    with pytest.raises(InputError, match=message):
        optimizers.run(cfg)
    assert not (tmp_path / "out").exists()


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quick_run_writes_results_csv_slice_and_plot(tmp_path):
    cfg = Config(out=tmp_path, **optimizers.QUICK)
    seen = []
    result = optimizers.run(cfg, progress=lambda label, done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiment"] == "optimizers" and len(results["verdicts"]) == 3
    assert results["all_held"] == all(v["held"] for v in results["verdicts"])
    rows = _rows(result.paths["csv"])
    assert list(rows[0]) == list(optimizers.COLUMNS)
    assert len(rows) == (len(PAIRS) + 1) * cfg.points
    assert len(_rows(result.paths["slice"])) == cfg.grid**2
    png = result.paths["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 150_000
    # The path's ends are the trained solutions' own losses, evaluated on their own.
    ends = [r for r in rows if r["path"] == path_name("sgd", "adam") and float(r["alpha"]) in (0, 1)]
    for row, name in zip(ends, ("SGD", "Adam"), strict=True):
        assert float(row["train_loss"]) == pytest.approx(
            result.figures[f"{name}: train loss (nats)"], rel=1e-4
        )


def test_the_net_fits_the_data_set_it_is_given():
    data = load_data("breast-cancer", 0)
    assert optimizers.layer_sizes(data) == (30, *optimizers.HIDDEN, 2)
