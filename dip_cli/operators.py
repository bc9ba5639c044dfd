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


class Downsample(Operator):
    """Super-resolution: y = D(x), a fixed separable Lanczos-2 antialiasing filter + stride.

    As in the paper (a Lanczos2 kernel with phase 0.5): the kernel has 4*s taps at offsets
    (k - (4s - 1)/2) / s, so output pixel j is centred on input pixels [j*s, (j+1)*s), and
    edge-replicated padding of 1.5*s makes the output exactly H/s x W/s. Taps sum to one,
    so a constant image stays constant.
    """

    name = "downsample"
    SCALES = (2, 4, 8)  # even factors: the 4s-tap kernel then centres exactly (odd ones would shift)

    def __init__(self, factor: int, channels: int) -> None:
        if factor not in self.SCALES:
            raise ValueError(f"scale must be one of {self.SCALES}, got {factor}")
        self.factor = factor
        taps = lanczos_taps(factor)
        kernel = torch.outer(taps, taps)
        self.weight = kernel.expand(channels, 1, *kernel.shape).contiguous()
        self.channels = channels

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        pad = 3 * self.factor // 2  # kernel (4s) - stride (s), split evenly
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
        return torch.nn.functional.conv2d(padded, self.weight, stride=self.factor, groups=self.channels)

    def to(self, device: torch.device | str) -> Downsample:
        self.weight = self.weight.to(device)
        return self


def lanczos_taps(factor: int, support: int = 2) -> torch.Tensor:
    """1-D Lanczos-``support`` taps for downsampling by ``factor``, normalised to sum 1."""
    length = 2 * support * factor
    offsets = (torch.arange(length, dtype=torch.float64) - (length - 1) / 2) / factor
    taps = torch.sinc(offsets) * torch.sinc(offsets / support)
    taps[offsets.abs() >= support] = 0
    return (taps / taps.sum()).float()


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


def simulate_downscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    """The low-resolution observation the paper used: the same Lanczos-2 downsampler."""
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float()
    y = Downsample(factor, x.shape[1]).A(x)
    return np.clip(y[0].permute(1, 2, 0).numpy(), 0, 1).astype(np.float32)


def simulate_missing_pixels(shape: tuple[int, int], fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask (True = known) with ``fraction`` of the pixels dropped at random."""
    rng = np.random.default_rng(seed)
    return rng.random(shape) >= fraction
