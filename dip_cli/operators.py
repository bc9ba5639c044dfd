"""Degradation operators A(x): what turned the clean image into the observation y.

The fit loop minimises ``operator.mse(operator.A(net(z)), y)``; an operator knows how the
observation was formed and which of its entries count (deepinv's physics objects, reduced to
what DIP needs). ``simulate_*`` make synthetic corrupted inputs for tests, samples, benchmarks
and experiments.
"""

from __future__ import annotations

import io as _io

import numpy as np
import torch


class Operator:
    """Base class: the identity (denoising, JPEG artifact removal)."""

    name = "identity"

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the standard name)
        return x

    def mse(self, measured: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the entries that were observed."""
        return torch.mean((measured - y) ** 2)

    def to(self, device: torch.device | str) -> Operator:
        return self


Identity = Operator


class Mask(Operator):
    """Inpainting: only the known pixels (mask = 1) are observed."""

    name = "mask"

    def __init__(self, known: torch.Tensor) -> None:
        # (1, 1, H, W) float in {0, 1}; broadcast over colour channels.
        self.known = known.float()
        self._count = float(self.known.sum())

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return x * self.known

    def mse(self, measured: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        channels = measured.shape[1]
        return torch.sum(((measured - y) * self.known) ** 2) / (self._count * channels)

    def to(self, device: torch.device | str) -> Mask:
        self.known = self.known.to(device)
        return self


# --- simulated degradations ------------------------------------------------------------------


def simulate_noise(pixels: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian noise of std ``sigma`` (on the 0-255 scale) and clip to [0, 1]."""
    rng = np.random.default_rng(seed)
    noisy = pixels + rng.normal(0.0, sigma / 255.0, size=pixels.shape)
    return np.clip(noisy, 0, 1).astype(np.float32)


def simulate_jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Compress with JPEG at ``quality`` (1-95) and decode again."""
    from PIL import Image

    array = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = _io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer)).astype(np.float32) / 255.0
    return decoded[..., None] if decoded.ndim == 2 else decoded


def simulate_missing_pixels(shape: tuple[int, int], fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask (True = known) with ``fraction`` of the pixels dropped at random."""
    rng = np.random.default_rng(seed)
    return rng.random(shape) >= fraction
