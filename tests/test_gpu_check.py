"""The GPU check runs on a CPU too (``--device cpu --quick``): its sections' mechanics, small."""

from __future__ import annotations

import json
import math

import numpy as np

from benchmarks.gpu_check import QUICK, big_photo, end_to_end, jpeg_of, photo, precision, restore_big


def test_the_photo_is_cut_to_the_size_asked_from_bundled_photos():
    pixels = photo(300, 200)
    assert pixels.shape == (200, 300, 3) and pixels.min() >= 0 and pixels.max() <= 1
    assert not (pixels[:, :44] == pixels[:, 256:]).all()  # blocks of different photos


def test_precision_times_both_modes_and_scores_them(tmp_path):
    rows = precision(QUICK, "cpu", tmp_path, QUICK.slices["precision"])
    assert [row["what"].rsplit(", ", 1)[1] for row in rows] == ["fp32", "bf16"]
    assert all(row["ms_per_step"] > 0 and 20 < row["psnr_after"] < 60 for row in rows)


def test_the_big_photo_s_run_reports_its_progress_and_its_result(tmp_path):
    source = jpeg_of(photo(160, 96), tmp_path)
    report = tmp_path / "big.json"
    restore_big(str(source), "cpu", ("--iters", "3", "--tile", "96"), str(report))
    state = json.loads(report.read_text())
    assert state["finished"] and math.isnan(state["peak_gpu_gb"])  # no GPU: no GPU memory
    assert np.load(state["pixels"]).shape == (96, 160, 3)


def test_a_big_photo_cut_short_by_its_slice_gives_no_result(tmp_path):
    (row,) = big_photo(QUICK, "cpu", tmp_path, 0.01)  # ends before the child can report
    assert "finished" not in row and "gain_db" not in row


def test_end_to_end_runs_both_commands_through_the_cli(tmp_path):
    rows = end_to_end(QUICK, "cpu", tmp_path, 120)
    assert [row["exit"] for row in rows] == [0, 0]  # each its own folder: no run folder shared
    assert all(math.isfinite(row["gain_db"]) for row in rows)
