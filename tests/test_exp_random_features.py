"""random-features: random conv features are seeded and sized as stated; the verdicts; a quick run."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from dip_cli.errors import InputError
from dip_cli.experiments import random_features as rf


@pytest.fixture(scope="module")
def shifted():
    return rf.make_images("shifted", 0)


def test_shifted_digits_are_whole_digits_in_a_larger_canvas(shifted):
    plain = rf.make_images("digits", 0)
    assert plain.x_train.shape[1:] == (8, 8) and shifted.x_train.shape[1:] == (rf.CANVAS, rf.CANVAS)
    np.testing.assert_array_equal(shifted.y_test, plain.y_test)  # the same split, the same labels
    # Every digit's ink is all there, only moved: the same total per image.
    np.testing.assert_allclose(shifted.x_test.sum((1, 2)), plain.x_test.sum((1, 2)), rtol=1e-5)
    # ... and moved to different places: the images' centres of ink spread over the canvas.
    rows = (shifted.x_train.sum(2) * np.arange(rf.CANVAS)).sum(1) / shifted.x_train.sum((1, 2))
    assert rows.max() - rows.min() > rf.CANVAS / 4


def test_random_features_are_seeded_and_sized_as_stated(shifted):
    x = shifted.x_test[:20]
    first = rf.random_features(x, seed=3, filters=8)
    assert first.shape == (20, 8 * rf.CELLS)  # each filter gives one value per pooling cell
    np.testing.assert_array_equal(first, rf.random_features(x, seed=3, filters=8))
    assert np.abs(first - rf.random_features(x, seed=4, filters=8)).max() > 0.1
    assert (first >= 0).all()  # max-pooled ReLUs


def test_fewer_filters_are_the_first_of_more():
    # A larger bank adds filters to the smaller one: the feature counts are nested.
    small = rf.draw_filters(np.random.default_rng(7), 4)
    large = rf.draw_filters(np.random.default_rng(7), 16)
    np.testing.assert_array_equal(small, large[:4])
    assert large.shape == (16, rf.KERNEL * rf.KERNEL + 1)


def test_plain_digits_give_the_same_feature_count():
    plain = rf.make_images("digits", 0)
    assert rf.random_features(plain.x_test[:5], seed=0, filters=4).shape == (5, 4 * rf.CELLS)


def _verdicts(random: dict[int, float], raw: float, cnn: float) -> dict[str, bool]:
    _, verdicts = rf.judge(random, raw, cnn)
    return {v.finding: v.held for v in verdicts}


def test_judge_holds_when_random_features_rise_beat_pixels_and_near_the_cnn():
    figures, verdicts = rf.judge({256: 70.0, 1024: 85.0, 4096: 90.0}, raw=20.0, cnn=91.5)
    assert all(v.held for v in verdicts) and len(verdicts) == 3
    assert figures["random features, 4096: test accuracy (%)"] == 90.0
    assert (
        figures["raw pixels: test accuracy (%)"] == 20.0 and figures["trained CNN: test accuracy (%)"] == 91.5
    )


def test_judge_fails_each_finding_on_its_own():
    rising = {256: 70.0, 1024: 85.0, 4096: 90.0}
    assert _verdicts(rising, raw=89.5, cnn=91.0) == {
        "random features beat pixels": False,  # 0.5 points: less than 1
        "close to a trained CNN": True,
        "more features, more accuracy": True,
    }
    assert not _verdicts(rising, raw=20.0, cnn=93.0)["close to a trained CNN"]  # 3 points behind
    dipping = {256: 70.0, 1024: 86.0, 4096: 85.0}  # a 1-point drop
    assert _verdicts(dipping, raw=20.0, cnn=86.0) == {
        "random features beat pixels": True,
        "close to a trained CNN": True,
        "more features, more accuracy": False,
    }
    assert _verdicts({256: 86.0, 4096: 85.75}, raw=20.0, cnn=86.0)["more features, more accuracy"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": "cifar"}, "--data must be one of shifted, digits"),
        ({"features": (256,)}, "at least two increasing multiples of 16"),
        ({"features": (512, 256)}, "at least two increasing multiples of 16"),
        ({"features": (256, 500)}, "at least two increasing multiples of 16"),
        ({"seeds": 0}, "--seeds and --epochs must be >= 1"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, change, message):
    cfg = replace(rf.Config(), out=tmp_path / "out", **change)
    with pytest.raises(InputError, match=message):
        rf.run(cfg)
    assert not (tmp_path / "out").exists()


def test_quick_run_writes_results_csv_and_plot(tmp_path):
    seen = []
    result = rf.run(replace(rf.Config(), **rf.QUICK, out=tmp_path), progress=lambda *a: seen.append(a))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiment"] == "random-features" and len(results["verdicts"]) == 3
    assert results["all_held"] == all(v["held"] for v in results["verdicts"])
    assert results["settings"]["data"] == "shifted"
    with open(result.paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(rf.COLUMNS)
    models = [r["model"] for r in rows]
    assert models.count("raw pixels") == 1 and models.count("random features") == len(rf.QUICK["features"])
    assert models.count("trained CNN") == rf.QUICK["epochs"]
    assert {int(r["features"]) for r in rows if r["model"] == "random features"} == set(rf.QUICK["features"])
    assert result.paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.paths["plot"].stat().st_size < 150_000
    assert seen[-1][1] == seen[-1][2]  # the bar ends full
    assert all(0 <= v <= 100 for k, v in result.figures.items() if k.endswith("(%)"))
