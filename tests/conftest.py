"""Shared fixtures: tiny real images (<= 48 px), a tiny preset, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY_PRESET = """
task = "denoise"
description = "tests: a tiny skip net"
[network]
kind = "skip"
channels_down = [16, 16, 16]
channels_skip = [4, 4, 4]
upsample = "bilinear"
[input]
kind = "noise"
depth = 8
[fit]
iters = 30
lr = 0.01
reg_noise_std = 0.03
ema = 0.9
[stop]
rule = "auto"
window = 10
patience = 20
warmup = 5
"""


def real_crop(name: str = "astronaut", size: int = 40, gray: bool = False) -> np.ndarray:
    """A downscaled crop of a scikit-image photo, float32 (H, W, C) in [0, 1]."""
    from skimage import data, transform

    image = getattr(data, name)()
    if image.ndim == 2:
        image = image[..., None]
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    patch = image[top : top + side, left : left + side].astype(np.float32) / 255.0
    patch = transform.resize(patch, (size, size), anti_aliasing=True).astype(np.float32)
    if gray and patch.shape[2] == 3:
        patch = patch.mean(axis=2, keepdims=True)
    return patch


def write(path: Path, pixels: np.ndarray, alpha: np.ndarray | None = None, bit_depth: int = 8) -> Path:
    from dip_cli.io import Picture, save_image

    save_image(path, Picture(pixels.astype(np.float32), alpha, bit_depth))
    return path


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("presets") / "tiny.toml"
    path.write_text(TINY_PRESET)
    return path


@pytest.fixture
def noisy_image(tmp_path) -> tuple[Path, Path]:
    """(noisy, clean) 40x40 astronaut crop, sigma = 25."""
    from dip_cli.operators import simulate_noise

    clean = real_crop("astronaut", 40)
    return (
        write(tmp_path / "noisy.png", simulate_noise(clean, 25, seed=1)),
        write(tmp_path / "clean.png", clean),
    )


@pytest.fixture
def cli(monkeypatch):
    """Invoke the CLI in-process; returns a function giving (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from dip_cli.cli import app

    runner = CliRunner()

    def invoke(*args: str | Path):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def dip_process(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dip_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def wait_for_checkpoint(run_dir: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (run_dir / "checkpoint.pt").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def expect_error(result, *fragments, code=2):
    exit_code, _, err = result
    assert exit_code == code, err
    # Rich draws usage errors in a box whose lines wrap wherever the (tmp) path makes them:
    # match the words, not the frame.
    flat = " ".join(err.translate(str.maketrans("│╭╮╰╯─", "      ")).split())
    for fragment in fragments:
        assert fragment in flat, flat
    assert "Traceback" not in err
