"""`dip experiment ...`: quick runs through the CLI, and the verdict logic on curves we make up."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dip_cli.experiments import (
    architectures,
    fit_curves,
    information_plane,
    jpeg_timeline,
    loss_surface,
    optimizers,
    random_features,
    random_labels,
    random_weights,
    sharpness,
)
from dip_cli.experiments.common import Verdict, load_target

RESULT_KEYS = {"experiment", "settings", "figures", "verdicts", "all_held", "versions", "device", "seconds"}
VERDICT_KEYS = {"finding", "claim", "measured", "comparison", "threshold", "held"}
OUTPUTS = {
    # name: (CSV file, its columns, plot file, extra options for a fast run)
    "fit-curves": ("curves.csv", fit_curves.COLUMNS, "fit-curves.png", ["--iters", "30"]),
    "architectures": ("curves.csv", architectures.COLUMNS, "architectures.png", ["--iters", "8"]),
    "jpeg-timeline": ("curve.csv", jpeg_timeline.COLUMNS, "jpeg-timeline.png", ["--iters", "50"]),
    "random-labels": ("training.csv", random_labels.COLUMNS, "random-labels.png", ["--epochs", "2"]),
    "random-weights": ("curves.csv", random_weights.COLUMNS, "random-weights.png", ["--iters", "10"]),
    "loss-surface": ("losses.csv", loss_surface.COLUMNS, "loss-surface.png", []),
    "optimizers": ("paths.csv", optimizers.COLUMNS, "optimizers.png", []),
    "sharpness": ("training.csv", sharpness.COLUMNS, "sharpness.png", []),
    "information-plane": ("information.csv", information_plane.COLUMNS, "information-plane.png", []),
    "random-features": ("accuracy.csv", random_features.COLUMNS, "random-features.png", []),
}


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Each experiment once, --quick, through the CLI: {name: (exit code, stdout, out folder)}."""
    from typer.testing import CliRunner

    from dip_cli.cli import app

    runner = CliRunner()
    runs = {}
    for name, (*_, extra) in OUTPUTS.items():
        out = tmp_path_factory.mktemp(name)
        result = runner.invoke(app, ["experiment", name, "--quick", "--out", str(out), *extra])
        runs[name] = (result.exit_code, result.stdout, out)
    return runs


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_quick_run_writes_results_csv_and_plot(quick_runs, name):
    code, stdout, out = quick_runs[name]
    assert code == 0, stdout  # exit 0 whatever the verdicts, without --strict
    results = json.loads((out / "results.json").read_text())
    assert results.keys() >= RESULT_KEYS and results["experiment"] == name
    assert {"python", "torch", "numpy", "dip"} <= results["versions"].keys()
    assert results["verdicts"] and all(v.keys() >= VERDICT_KEYS for v in results["verdicts"])
    assert results["all_held"] == all(v["held"] for v in results["verdicts"])
    assert results["figures"] and results["settings"]
    csv_name, columns, plot, _ = OUTPUTS[name]
    with open(out / csv_name, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == list(columns)
    assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The verdict table: one "held" / "not held" per finding, as results.json says.
    assert stdout.count("held") == len(results["verdicts"])
    assert stdout.count("not held") == sum(not v["held"] for v in results["verdicts"])


def test_strict_exits_1_when_a_finding_does_not_hold(cli, tmp_path):
    # One epoch cannot memorise 1347 random labels: "everything is memorised" does not hold.
    code, stdout, _ = cli(
        "experiment", "random-labels", "--quick", "--epochs", "1", "--strict", "--out", tmp_path
    )
    results = json.loads((tmp_path / "results.json").read_text())
    memorised = next(v for v in results["verdicts"] if v["finding"] == "everything is memorised")
    assert not memorised["held"] and "not held" in stdout
    assert code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--image", "no-such-picture"],
            "neither a file nor a bundled image; give a path or one of: astronaut",
        ),
        (["--size", "4"], "--size must be between"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    code, _stdout, stderr = cli("experiment", "fit-curves", "--quick", "--out", tmp_path / "out", *args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def _write_png(path: Path, height: int, width: int) -> Path:
    from dip_cli.io import Picture, save_image

    save_image(path, Picture(np.random.default_rng(0).random((height, width, 3)).astype(np.float32)))
    return path


def test_out_must_not_hold_the_input_image(cli, tmp_path):
    image = _write_png(tmp_path / "photo.png", 32, 32)
    code, _, stderr = cli("experiment", "jpeg-timeline", "--quick", "--image", image, "--out", tmp_path)
    assert code == 2 and "holds the input image" in stderr


def test_image_from_a_file_or_a_bundled_name(tmp_path):
    path = _write_png(tmp_path / "wide.png", 20, 30)
    assert load_target(str(path), 16).shape == (16, 16, 3)
    assert load_target("camera", 24).shape == (24, 24, 1)  # grayscale stays one channel
    crop = load_target("astronaut", 512)  # the bundled image is 512 x 512: no resize
    from skimage import data

    assert crop.dtype == np.float32 and np.allclose(crop * 255, data.astronaut(), atol=1e-3)


# --- verdict logic on synthetic data ---------------------------------------------------------


def test_verdict_comparisons():
    assert Verdict("f", "c", 5, ">=", 3).held and not Verdict("f", "c", 2, ">=", 3).held
    assert Verdict("f", "c", 2, "<=", 3).held and not Verdict("f", "c", 4, "<=", 3).held
    assert Verdict("f", "c", 1.0, "between", (0.7, 1.5)).held
    assert not Verdict("f", "c", 1.6, "between", (0.7, 1.5)).held
    assert not Verdict("f", "c", math.nan, "<=", 3).held  # nothing measured, nothing shown
    assert Verdict("f", "c", math.inf, ">=", 10).as_dict()["measured"] is None


def _fvu_rows(network: str, target: str, speed: float, floor: float = 0.0, iters: int = 1500) -> list[dict]:
    """An exponential fit curve: FVU = floor + (1 - floor) exp(-speed * t)."""
    return [
        {
            "network": network,
            "target": target,
            "iteration": t,
            "fvu": floor + (1 - floor) * math.exp(-speed * t),
            "psnr_clean": math.nan,
        }
        for t in range(1, iters + 1)
    ]


def _curves(shuffled_speed: float, control_ratio: float, psnr_clean: list[float]) -> list[dict]:
    rows = _fvu_rows("dip", "image", 0.02)  # FVU 0.1 at ~115 it
    rows += _fvu_rows("dip", "noisy", 0.01)
    rows += _fvu_rows("dip", "shuffled", shuffled_speed)
    rows += _fvu_rows("dip", "noise", 1e-4)
    rows += _fvu_rows("pixel-mlp", "image", 0.01)
    rows += _fvu_rows("pixel-mlp", "shuffled", 0.01 / control_ratio)
    rows += _fvu_rows("pixel-mlp", "noise", 0.01)
    for row, db in zip((r for r in rows if r["target"] == "noisy"), psnr_clean, strict=False):
        row["psnr_clean"] = db
    return rows


def _held(verdicts: list[Verdict]) -> dict[str, bool]:
    return {v.finding: v.held for v in verdicts}


def test_fit_curves_verdicts_follow_the_curves():
    rise_and_fall = [20 + 5 * math.sin(math.pi * t / 1500) for t in range(1, 1501)]  # peak 25, back to 20
    _, verdicts = fit_curves.judge(_curves(1e-4, 1.0, rise_and_fall), 20.0, 1500)
    assert all(_held(verdicts).values()), [v.as_dict() for v in verdicts if not v.held]

    # Shuffled pixels fitted as fast as the image, a control that prefers the image, a noisy
    # fit that only climbs: those findings must come out "not held".
    only_rises = [20 + 2 * t / 1500 for t in range(1, 1501)]
    _, verdicts = fit_curves.judge(_curves(0.02, 3.0, only_rises), 20.0, 1500)
    held = _held(verdicts)
    assert not held["image faster than shuffled pixels"]
    assert held["image faster than uniform noise"]  # noise still never converges
    assert not held["control has no prior"]
    assert not held["noise rejected: peak"]
    assert not held["… at first: then falls"]


def test_fit_curves_never_reaching_is_a_lower_bound():
    _, verdicts = fit_curves.judge(_curves(1e-5, 1.0, [25.0] * 1500), 20.0, 1500)
    slower = next(v for v in verdicts if v.finding == "image faster than shuffled pixels")
    # The image reaches FVU 0.1 at iteration 116 (exp(-0.02 t) <= 0.1); shuffled never does.
    assert "lower bound" in slower.note and slower.measured == pytest.approx(1501 / 116)


def _arch_rows(best: dict[str, float]) -> list[dict]:
    return [
        {"network": n, "iteration": t, "loss": 0.0, "psnr_clean": b - abs(t - 50) / 50}
        for n, b in best.items()
        for t in range(1, 101)
    ]


def test_architecture_verdicts_follow_the_curves():
    good = {
        "hourglass-2": 26,
        "hourglass-5": 27,
        "skip": 27,
        "unet": 24,
        "resnet": 23,
        "pixel-mlp": 20.5,
        "pixels": 20,
    }
    figures, verdicts = architectures.judge(_arch_rows(good), 20.0)
    assert all(_held(verdicts).values())
    assert figures["skip: best PSNR (dB)"] == 27 and figures["skip: iteration of the best"] == 50
    assert figures["skip: final PSNR (dB)"] == pytest.approx(26)
    bad = {**good, "unet": 26.5, "pixels": 23}
    held = _held(architectures.judge(_arch_rows(bad), 20.0)[1])
    assert held == {
        "encoder-decoders win": False,
        "encoder-decoders denoise": True,
        "no structure, no prior": False,
    }


def _hole_rows(final: dict[str, float]) -> list[dict]:
    return [
        {"network": n, "iteration": t, "loss": 0.0, "psnr_hole": f - 3 + 3 * t / 100}
        for n, f in final.items()
        for t in range(10, 101, 10)
    ]


def test_inpainting_verdicts_follow_the_hole_psnr():
    good = {"hourglass-2": 18, "hourglass-4": 19.5, "hourglass-6": 20.5, "unet-5": 18.5, "resnet-8": 17}
    figures, verdicts = architectures.judge_inpaint(_hole_rows(good), {"biharmonic": 19.0})
    assert all(_held(verdicts).values())
    assert figures["hourglass-6: final PSNR in the holes (dB)"] == pytest.approx(20.5)
    assert figures["biharmonic: PSNR in the holes (dB)"] == 19.0
    measured = {v.finding: v.measured for v in verdicts}
    assert measured == pytest.approx({"deeper inpaints better": 2.5, "skip connections hurt": 2.0})
    # A U-Net as good as the deep hourglass, and depth that barely helps: both not held.
    bad = {**good, "unet-5": 20.0, "hourglass-2": 20.0}
    assert not any(_held(architectures.judge_inpaint(_hole_rows(bad), {})[1]).values())


def test_default_holes_are_large_and_the_same_at_every_size():
    for side in (64, 128, 256):
        known = architectures.large_holes(side, side)
        assert known.dtype == bool and 0.22 < 1 - known.mean() < 0.30
    small = architectures.large_holes(64, 64)
    big = architectures.large_holes(128, 128)[::2, ::2]
    assert (small == big).mean() > 0.95  # the drawing scales with the image


def test_mask_file_is_cropped_like_the_image_white_known(tmp_path):
    from dip_cli.io import Picture, save_image

    known = np.ones((40, 60, 1), np.float32)
    known[:, 30:] = 0  # right half is a hole; the centre square crop keeps columns 10..49
    save_image(tmp_path / "mask.png", Picture(known))
    mask = architectures.load_mask(str(tmp_path / "mask.png"), 40)
    assert mask.shape == (40, 40) and mask[:, :20].all() and not mask[:, 20:].any()
    save_image(tmp_path / "full.png", Picture(np.ones((8, 8, 1), np.float32)))
    with pytest.raises(Exception, match="no holes"):
        architectures.load_mask(str(tmp_path / "full.png"), 8)


def test_architectures_bad_task_or_mask_is_exit_2(cli, tmp_path):
    code, _, stderr = cli("experiment", "architectures", "--quick", "--task", "sr", "--out", tmp_path / "o")
    assert code == 2 and "--task must be one of inpaint, denoise" in stderr
    code, _, stderr = cli(
        "experiment", "architectures", "--quick", "--mask", tmp_path / "none.png", "--out", tmp_path / "o"
    )
    assert code == 2 and "does not exist" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("width", [8, 32, 128])
def test_unet_and_resnet_match_the_deep_hourglass_in_size_at_any_width(width):
    from dip_cli.experiments.architectures import _parameters, inpaint_networks

    networks = inpaint_networks(width)
    sizes = {name: _parameters(*net) for name, net in networks.items()}
    assert networks["hourglass-6"][1]["channels_down"] == (width,) * 6
    for name in ("unet-5", "resnet-8"):
        assert abs(sizes[name] / sizes["hourglass-6"] - 1) < 0.12, sizes  # under 4% at 32 and 128; 11% at 8
    assert sizes["hourglass-2"] < sizes["hourglass-4"] < sizes["hourglass-6"]


def test_architectures_width_is_recorded_and_bad_widths_are_exit_2(cli, tmp_path):
    args = ("experiment", "architectures", "--quick", "--width", "8", "--iters", "2")
    code, _, _ = cli(*args, "--out", tmp_path)
    settings = json.loads((tmp_path / "results.json").read_text())["settings"]
    assert code == 0 and settings["width"] == 8
    assert settings["networks"]["hourglass-6"][1]["channels_down"] == [8] * 6
    assert set(settings["parameters"]) == {"hourglass-2", "hourglass-4", "hourglass-6", "unet-5", "resnet-8"}
    for bad in (["--width", "2"], ["--width", "64", "--task", "denoise"]):
        code, _, stderr = cli("experiment", "architectures", "--quick", *bad, "--out", tmp_path / "o")
        assert code == 2 and "--width" in stderr and "Traceback" not in stderr


def test_architectures_denoise_is_the_second_result(cli, tmp_path):
    code, _stdout, _ = cli(
        "experiment", "architectures", "--quick", "--task", "denoise", "--iters", "3", "--out", tmp_path
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert code == 0 and results["settings"]["task"] == "denoise"
    assert "pixels: best PSNR (dB)" in results["figures"]
    assert {v["finding"] for v in results["verdicts"]} == {
        "encoder-decoders win",
        "encoder-decoders denoise",
        "no structure, no prior",
    }


def test_jpeg_timeline_verdicts_follow_the_curve():
    def rows(curve, fit="decoded pixels"):
        return [
            {"fit": fit, "iteration": t, "psnr_clean": db, "psnr_jpeg": 30.0} for t, db in enumerate(curve, 1)
        ]

    peak_then_back = [24 + 2 * math.sin(math.pi * t / 100) for t in range(1, 101)]
    figures, verdicts = jpeg_timeline.judge(rows(peak_then_back), 24.0)
    assert all(_held(verdicts).values()) and figures["decoded pixels: iteration of the best"] == 50
    plateau = [24 + 2 * (1 - math.exp(-t / 10)) for t in range(1, 101)]
    assert _held(jpeg_timeline.judge(rows(plateau), 24.0)[1]) == {
        "rises above the JPEG": True,
        "then falls back": False,
    }
    never_above = [23 - t / 100 for t in range(1, 101)]
    assert not any(_held(jpeg_timeline.judge(rows(never_above), 24.0)[1]).values())
    # The file model's curve is reported beside the paper's fit but never judged.
    both = rows(plateau) + rows(peak_then_back, "file model")
    figures, verdicts = jpeg_timeline.judge(both, 24.0)
    assert figures["file model: iteration of the best"] == 50
    assert figures["file model: fraction of the gain given back by the end"] == pytest.approx(1.0, abs=0.01)
    assert _held(verdicts) == {"rises above the JPEG": True, "then falls back": False}


def _summary(random_test: float, random_epochs: float, sweep: list[float]) -> dict:
    summary = {}
    for model in random_labels.MODELS:
        fit = {"train_accuracy": 100.0}
        summary[model, "true labels"] = {**fit, "test_accuracy": sweep[0], "epochs_to_fit": 10}
        summary[model, "true labels + weight decay"] = {
            **fit,
            "test_accuracy": sweep[0] - 1,
            "epochs_to_fit": 12,
        }
        summary[model, "random labels"] = {
            **fit,
            "test_accuracy": random_test,
            "epochs_to_fit": random_epochs,
        }
        for condition in ("shuffled pixels", "random pixels", "gaussian"):
            summary[model, condition] = {**fit, "test_accuracy": 10.0, "epochs_to_fit": 30}
        for p, accuracy in zip(random_labels.CORRUPTIONS, sweep[1:], strict=True):
            summary[model, f"p={p}"] = {**fit, "test_accuracy": accuracy, "epochs_to_fit": 40}
    return summary


def test_random_labels_verdicts_follow_the_figures():
    _, verdicts = random_labels.judge(_summary(9.0, 40, [97, 90, 75, 50, 30]), 150)
    assert all(_held(verdicts).values()), [v.as_dict() for v in verdicts if not v.held]
    # Random labels that generalise, fit at once, and a sweep that rises again: not held.
    _, verdicts = random_labels.judge(_summary(60.0, 11, [97, 90, 95, 50, 30]), 150)
    held = _held(verdicts)
    assert not held["randomised data does not"]
    assert not held["random labels cost a small factor (mlp)"]
    assert not held["corruption hurts steadily"]
    assert held["true labels generalise"] and held["everything is memorised"]
    # Never fitted within the budget: the slowdown is unknown, so not held.
    _, verdicts = random_labels.judge(_summary(9.0, math.inf, [97, 90, 75, 50, 30]), 150)
    assert "not both fitted" in next(v for v in verdicts if v.finding.endswith("(cnn)")).note


def test_random_weights_verdicts_follow_the_curves():
    def rows(final_db: list[float]) -> list[dict]:
        return [
            {"depth": d, "iteration": t, "loss": 0.0, "psnr": db * t / 10}
            for d, db in zip(random_weights.DEPTHS, final_db, strict=True)
            for t in range(1, 11)
        ]

    figures, verdicts = random_weights.judge(rows([40, 38, 22, 16, 12]))
    assert all(_held(verdicts).values()) and figures["inversion from depth 4: PSNR (dB)"] == 22
    held = _held(random_weights.judge(rows([20, 18, 22, 16, 12]))[1])
    assert held == {"random features invert": False, "deeper is blurrier": False}


def test_label_corruptions_touch_only_what_they_should():
    data = random_labels.load_digits(0)
    assert len(data.y_train) == 1347 and len(data.y_test) == 450
    noisy = random_labels.corrupt(data, "p=0.4", 0)
    changed = np.mean(noisy.y_train != data.y_train)
    assert 0.3 < changed < 0.4  # p = 0.4, and 1 in 10 redraws lands on the true label
    assert np.array_equal(noisy.x_train, data.x_train) and np.array_equal(noisy.y_test, data.y_test)
    shuffled = random_labels.corrupt(data, "shuffled pixels", 0)
    assert np.allclose(np.sort(shuffled.x_train, axis=1), np.sort(data.x_train, axis=1))
    gaussian = random_labels.corrupt(data, "gaussian", 0)
    assert abs(gaussian.x_train.mean() - data.x_train.mean()) < 0.01


def test_fit_curves_targets_keep_the_image_statistics():
    clean = load_target("astronaut", 16)
    targets = fit_curves.make_targets(clean, 0)
    assert set(targets) == set(fit_curves.TARGETS)
    assert np.allclose(
        np.sort(targets["shuffled"].reshape(-1, 3), axis=0), np.sort(clean.reshape(-1, 3), axis=0)
    )
    assert all(t.shape == clean.shape for t in targets.values())


def test_experiment_folder_is_the_default_out():
    from dip_cli.experiments import make_config

    config = make_config("fit-curves", quick=True, iters=7)
    assert config.out == Path("experiments/fit-curves") and config.iters == 7 and config.size == 32


def test_experiment_help_lists_all_ten():
    from typer.testing import CliRunner

    from dip_cli.cli import app
    from dip_cli.experiments import EXPERIMENTS

    listing = CliRunner().invoke(app, ["experiment", "--help"]).stdout
    assert len(EXPERIMENTS) == 10 and all(name in listing for name in EXPERIMENTS)
