"""Resources: the device choices that change speed, never the result; and the policies built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dip_cli import resources as devices
from dip_cli.core import restore_array
from dip_cli.metrics import psnr
from dip_cli.operators import Identity, simulate_noise
from dip_cli.options import RunOptions
from dip_cli.presets import load_preset
from tests.conftest import TINY_PRESET, real_crop


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("device") / "tiny.toml"
    path.write_text(TINY_PRESET)
    return load_preset(str(path)).with_overrides(iters=150, stop="fixed")


def test_the_cpu_fits_channels_last_and_a_gpu_keeps_the_default_layout():
    assert devices.memory_format(torch.device("cpu")) is torch.channels_last
    assert devices.memory_format(torch.device("cuda")) is torch.contiguous_format
    assert devices.memory_format(torch.device("mps")) is torch.contiguous_format


def test_the_layout_changes_the_speed_not_the_quality(tiny, monkeypatch):
    clean = real_crop("astronaut", 48)
    noisy = simulate_noise(clean, 25, seed=1)
    used = []

    def spy(device):
        used.append(layout := original(device))
        return layout

    original = devices.memory_format
    monkeypatch.setattr(devices, "memory_format", spy)
    channels_last, _ = restore_array(noisy, Identity(), tiny, RunOptions(threads=1, tile="off"))
    assert used == [torch.channels_last]
    monkeypatch.setattr(devices, "memory_format", lambda device: torch.contiguous_format)
    contiguous, _ = restore_array(noisy, Identity(), tiny, RunOptions(threads=1, tile="off"))
    # Only the order of sums differs, but Adam amplifies rounding as it does across CPU kinds
    # (the two images differ at ~37 dB after 40 steps): the quality is what must not change.
    gains = [psnr(x, clean) - psnr(noisy, clean) for x in (channels_last, contiguous)]
    assert min(gains) > 1.5 and abs(gains[0] - gains[1]) < 0.75, gains
    assert np.isfinite(channels_last).all() and channels_last.shape == noisy.shape


def test_the_memory_estimate_counts_each_module_output_once_per_architecture_and_size():
    """Activations kept for backward (every leaf module's output, 4 bytes, 1.5x for slack),
    weights with their gradient and Adam state, and the per-pixel buffers. Counts are kept per
    architecture and size, so a second net of another width or the same net at another size
    is counted afresh."""

    def net(width: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU())

    def expected(width: int, side: int) -> int:
        activations = 2 * width * side * side  # the convolution's output and the ReLU's
        params = (3 * 9 + 1) * width
        return int(activations * 4 * 1.5 + params * 16 + 200 * side * side * 4)

    for width, side in ((4, 8), (8, 8), (4, 16), (4, 8)):
        assert devices.estimate_bytes(net(width), 3, side, side) == expected(width, side)
