"""Device choices that change speed, never the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dip_cli import device as devices
from dip_cli.core import restore_array
from dip_cli.metrics import psnr
from dip_cli.operators import Identity, simulate_noise
from dip_cli.presets import load_preset
from tests.conftest import TINY_PRESET, real_crop


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("device") / "tiny.toml"
    path.write_text(TINY_PRESET)
    return load_preset(str(path)).with_overrides(iters=40, stop="fixed")


def test_the_cpu_fits_channels_last_and_a_gpu_keeps_the_default_layout():
    assert devices.memory_format(torch.device("cpu")) is torch.channels_last
    assert devices.memory_format(torch.device("cuda")) is torch.contiguous_format
    assert devices.memory_format(torch.device("mps")) is torch.contiguous_format


def test_the_layout_changes_the_speed_not_the_image(tiny, monkeypatch):
    noisy = simulate_noise(real_crop("astronaut", 48), 25, seed=1)
    used = []

    def spy(device):
        used.append(layout := original(device))
        return layout

    original = devices.memory_format
    monkeypatch.setattr(devices, "memory_format", spy)
    channels_last, _ = restore_array(noisy, Identity(), tiny, threads=1, tile="off")
    assert used == [torch.channels_last]
    monkeypatch.setattr(devices, "memory_format", lambda device: torch.contiguous_format)
    contiguous, _ = restore_array(noisy, Identity(), tiny, threads=1, tile="off")
    # Only the order of the sums differs: 40 Adam steps keep the two within float noise.
    assert psnr(channels_last, contiguous) > 45
    assert np.isfinite(channels_last).all() and channels_last.shape == noisy.shape
