"""Degradation operators A(x): what turned the clean image into the observation y.

The fit loop minimises ``operator.loss(net(z), y)``: an operator knows how the observation
was formed and which of its entries count (deepinv's physics objects, reduced to what DIP
needs: ``nn.Module``s whose fixed data are buffers). ``simulate_*`` make synthetic corrupted
inputs for tests, samples, benchmarks and experiments.
"""

from __future__ import annotations

import io as _io

import numpy as np
import torch
from torch import nn

from dip_cli.settings import SR_SCALES


class Operator(nn.Module):
    """Base class: the identity (denoising, JPEG artifact removal).

    ``forward`` is A(x). ``loss`` is the mean squared error over the observed entries;
    ``finish`` turns the fitted image into the output (the mask puts the known pixels back);
    ``output_size`` is the size of x for an observation of a given size. Fixed data (a mask,
    a filter) are buffers, so ``.to(device)`` and ``state_dict()`` carry them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the standard name)
        return self(x)

    def mse(self, measured: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the entries that were observed."""
        return torch.mean((measured - y) ** 2)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.mse(self(x), y)

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width


Identity = Operator


class Mask(Operator):
    """Inpainting: only the known pixels (mask = 1) are observed."""

    def __init__(self, known: torch.Tensor) -> None:
        super().__init__()
        # (1, 1, H, W) float in {0, 1}; broadcast over colour channels.
        self.register_buffer("known", known.float().reshape(1, 1, *known.shape[-2:]))
        self.register_buffer("count", self.known.sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.known

    def mse(self, measured: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        channels = measured.shape[1]
        return torch.sum(((measured - y) * self.known) ** 2) / (self.count * channels)

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Known pixels are facts: keep them exactly, use the network only to fill the holes.
        return torch.where(self.known.bool(), y, x)


class Downsample(Operator):
    """Super-resolution: y = D(x), a fixed separable Lanczos-2 antialiasing filter + stride.

    As in the paper (a Lanczos2 kernel with phase 0.5): the kernel has 4*s taps at offsets
    (k - (4s - 1)/2) / s, so output pixel j is centred on input pixels [j*s, (j+1)*s), and
    edge-replicated padding of 1.5*s makes the output exactly H/s x W/s. Taps sum to one,
    so a constant image stays constant.
    """

    SCALES = SR_SCALES  # even factors: the 4s-tap kernel then centres exactly (odd ones would shift)

    def __init__(self, factor: int, channels: int) -> None:
        super().__init__()
        if factor not in self.SCALES:
            raise ValueError(f"scale must be one of {self.SCALES}, got {factor}")
        self.factor = factor
        self.channels = channels
        taps = lanczos_taps(factor)
        kernel = torch.outer(taps, taps)
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = 3 * self.factor // 2  # kernel (4s) - stride (s), split evenly
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
        return torch.nn.functional.conv2d(padded, self.weight, stride=self.factor, groups=self.channels)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height * self.factor, width * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}, channels={self.channels}"


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
