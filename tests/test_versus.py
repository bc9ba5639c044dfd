"""benchmarks.versus: its anchors run where they are installed, and say so where they are not."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmarks import versus
from tests.conftest import real_crop


def test_a_missing_decoder_gives_no_column_values_and_the_table_says_why(monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    data = versus.encode(real_crop("coffee", 32), 30, "4:2:0")
    assert versus.external("jpeg2png", data) is None
    score = {"psnr": 30.0, "ssim": 0.9, "seconds": 1.0}
    row = {
        "task": "jpeg",
        "crop": "x",
        "setting": "q30 4:2:0",
        "input": score,
        "jpeg2png": None,
        "dip": score,
    }
    versus.print_task("jpeg", [row])
    assert "not on PATH" in capsys.readouterr().out


@pytest.mark.parametrize(("tool", "options"), [("jpegqs", ("-q", "6")), ("jpeg2png", ())])
def test_an_installed_decoder_restores_the_file(tool, options):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not on PATH (a benchmark anchor only: see benchmarks/versus.py)")
    clean = real_crop("coffee", 32)
    out = versus.external(tool, versus.encode(clean, 30, "4:2:0"), *options)
    assert out.shape == clean.shape and 0 <= out.min() <= out.max() <= 1


def test_the_crops_are_distinct_128_px_photos():
    # cave and kate come from the paper's images beside the project (../shared/data/dip), which a
    # clone elsewhere lacks; the others ship with scikit-image and scikit-learn.
    shared = {"cave", "kate"}
    names = [n for n in versus.CROPS if versus.CROPS[n][0] not in shared or versus.DATA.is_dir()]
    assert len(names) >= 6
    crops = {name: versus.crop(name, 128) for name in names}
    assert all(c.shape == (128, 128, 3) for c in crops.values())
    assert len({c.tobytes() for c in crops.values()}) == len(crops)
    assert min(float(np.std(c)) for c in crops.values()) > 0.01  # none is flat
