"""information-plane: the binning estimator on known answers, the data, the verdicts, a quick run."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from dip_cli.errors import InputError
from dip_cli.experiments import information_plane as ip


def _bits(k: int) -> np.ndarray:
    """All 2^k distinct rows of k bits."""
    return (np.arange(2**k)[:, None] >> np.arange(k)) & 1


# --- the estimator ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 10])
def test_i_x_x_is_h_x_k_bits_for_2k_distinct_values(k):
    codes = _bits(k)  # T = X itself, uniform over 2^k values
    i_xt, _ = ip.mutual_information(codes, np.zeros(len(codes), np.int64))
    assert i_xt == pytest.approx(k, abs=1e-9)


def test_independent_label_carries_no_information():
    rows = _bits(8)
    t, y = rows[:, :5], rows[:, 7]  # over all 256 inputs these bits are exactly independent
    _, i_ty = ip.mutual_information(t, y)
    assert i_ty == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)  # independent draws: close to 0, a small positive bias
    _, i_ty = ip.mutual_information(rng.integers(0, 4, (20000, 1)), rng.integers(0, 2, 20000))
    assert 0 <= i_ty < 0.005


def test_a_label_that_is_a_function_of_t_gives_i_t_y_equal_h_y():
    t = _bits(6)
    y = (t.sum(1) >= 4).astype(np.int64)  # deterministic, unbalanced (22 of 64)
    p = y.mean()
    h_y = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    _, i_ty = ip.mutual_information(t, y)
    assert i_ty == pytest.approx(h_y, abs=1e-9)
    assert i_ty == pytest.approx(ip.entropy_bits(np.bincount(y)), abs=1e-9)


def test_binning_merges_values_within_a_bin_and_keeps_the_ends():
    t = np.array([-1.0, -0.99, 0.0, 0.01, 0.999, 1.0])
    codes = ip.bin_activations(t, -1.0, 1.0, 30)
    assert codes.tolist() == [0, 0, 15, 15, 29, 29]
    assert ip.bin_activations(np.zeros(3), 0.0, 0.0).tolist() == [0, 0, 0]  # a dead ReLU layer: one bin
    # Binning can only lose information: I(X;T_binned) <= I(X;T) = 12 bits over 4096 inputs.
    acts = np.tanh(np.random.default_rng(1).normal(size=(4096, 3)) * 3)
    i_xt, _ = ip.mutual_information(ip.bin_activations(acts, -1, 1), np.zeros(4096, np.int64))
    assert 0 < i_xt < 12


def test_compression_is_the_fall_from_the_peak():
    assert ip.compression([1.0, 4.0, 3.0]) == pytest.approx(25.0)
    assert ip.compression([1.0, 2.0, 4.0]) == 0.0
    assert ip.compression([0.0, 0.0]) == 0.0


# --- data ------------------------------------------------------------------------------------


def test_bits12_is_every_input_balanced_fixed_and_split_80_20():
    a, b = ip.make_task("bits12", 0), ip.make_task("bits12", 1)
    assert a.x.shape == (4096, 12) and set(np.unique(a.x)) == {-1.0, 1.0}
    assert len(np.unique(a.x, axis=0)) == 4096
    assert a.y.sum() == 2048  # exactly balanced: the rule is even in x
    assert np.array_equal(a.y, b.y)  # the labelling rule does not depend on the seed
    assert np.array_equal(a.y, a.y[::-1])  # row 4095 - i is -x_i: the same label
    assert a.train.sum() == round(0.8 * 4096) and not np.array_equal(a.train, b.train)


def test_digits_are_train_then_test_in_minus_one_to_one():
    task = ip.make_task("digits", 0)
    assert task.x.shape == (1797, 64) and task.classes == 10
    assert task.x.min() == -1 and task.x.max() == 1 and task.train.sum() == 1347


def test_snapshot_epochs_start_at_zero_and_end_at_the_last():
    epochs = ip.snapshot_epochs(5000, 80)
    assert epochs[0] == 0 and epochs[1] == 1 and epochs[-1] == 5000
    assert epochs == sorted(set(epochs)) and 60 <= len(epochs) <= 81


def test_tanh_and_relu_nets_start_from_the_same_weights():
    params = ip.init_params((12, 10, 7, 5, 4, 3, 2), [0, 1])
    for p in params:
        assert p.shape[0] == 4 and np.array_equal(p[:2].numpy(), p[2:].numpy())
    assert not np.array_equal(params[0][0].numpy(), params[0][1].numpy())  # seeds differ


# --- verdicts --------------------------------------------------------------------------------


def _summary(activation, seed, peak, end, test):
    layers = 5
    return ip.Summary(
        activation,
        seed,
        i_xt_start=(peak - 1,) * layers,
        i_xt_peak=(peak,) * layers,
        peak_epoch=(100,) * layers,
        i_xt_end=(end,) * layers,
        i_ty_end=(0.99,) * layers,
        train_accuracy=100.0,
        test_accuracy=test,
    )


def _judge(tanh_end, relu_end, relu_test, tanh_test=95.0):
    summaries = [
        *(_summary("tanh", s, 10.0, tanh_end, tanh_test) for s in range(3)),
        *(_summary("relu", s, 8.0, relu_end, relu_test) for s in range(3)),
    ]
    figures, verdicts = ip.judge(summaries)
    return figures, {v.finding: v for v in verdicts}


def test_judge_holds_when_tanh_compresses_and_relu_does_not():
    figures, verdicts = _judge(tanh_end=7.0, relu_end=8.0, relu_test=94.0)
    assert figures["tanh, last hidden layer: I(X;T) below its peak at the end (%)"] == pytest.approx(30.0)
    assert figures["relu, last hidden layer: I(X;T) below its peak at the end (%)"] == 0.0
    assert figures["ReLU minus tanh test accuracy (points)"] == pytest.approx(-1.0)
    assert all(v.held for v in verdicts.values())


def test_judge_does_not_hold_on_the_wrong_side_of_each_threshold():
    _, verdicts = _judge(tanh_end=9.2, relu_end=7.2, relu_test=92.0)  # 8% and 10% below; -3 points
    assert not any(v.held for v in verdicts.values())
    assert verdicts["tanh layers compress"].measured == pytest.approx(8.0)
    assert verdicts["ReLU layers do not"].measured == pytest.approx(10.0)


def test_judge_takes_medians_over_seeds():
    summaries = [_summary("tanh", s, 10.0, end, 95.0) for s, end in enumerate((9.9, 5.0, 6.0))]
    summaries += [_summary("relu", s, 8.0, 8.0, test) for s, test in enumerate((50.0, 96.0, 97.0))]
    figures, _ = ip.judge(summaries)
    assert figures["tanh, last hidden layer: I(X;T) below its peak at the end (%)"] == pytest.approx(40.0)
    assert figures["ReLU minus tanh test accuracy (points)"] == pytest.approx(1.0)


# --- a quick run -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["digits"])  # the smaller; bits12 runs through the CLI's quick run
def test_quick_run_writes_results_csv_and_plot(tmp_path, data):
    cfg = replace(ip.Config(), **ip.QUICK, data=data, out=tmp_path)
    result = ip.run(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiment"] == "information-plane" and len(results["verdicts"]) == 3
    assert results["all_held"] == all(v["held"] for v in results["verdicts"])
    with open(result.paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(ip.COLUMNS)
    widths = ip.HIDDEN[data]
    epochs = ip.snapshot_epochs(cfg.epochs, cfg.snapshots)
    assert len(rows) == len(ip.ACTIVATIONS) * len(epochs) * len(widths)
    top = math.log2(len(ip.make_task(data, 0).y))
    slack = 1e-3  # the CSV keeps 6 significant digits
    assert all(-slack <= float(r["i_ty"]) <= float(r["i_xt"]) + slack <= top + 2 * slack for r in rows)
    assert result.paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.paths["plot"].stat().st_size < 150_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": "mnist"}, "--data must be one of"),
        ({"epochs": 0}, "--epochs"),
        ({"snapshots": 1}, "--snapshots"),
    ],
)
def test_bad_config_is_an_input_error_before_anything_is_written(tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        ip.run(replace(ip.Config(), **{**ip.QUICK, **change}, out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()
