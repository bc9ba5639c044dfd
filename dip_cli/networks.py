"""Untrained generator networks and their fixed input codes.

The "skip" encoder-decoder follows DIP (Ulyanov et al., models/skip.py of the original code):
each level has an optional 1x1 skip branch and a deeper branch (strided 3x3 conv down, 3x3
conv, the next level, upsample x2); the two are concatenated and merged by BN, 3x3 conv and
1x1 conv. Every conv uses reflection padding and a bias, every activation is LeakyReLU(0.2),
and a 1x1 conv + sigmoid head maps to the image. ``hourglass`` is the same net without skips.

For the architecture experiments (``dip experiment``) the registry also holds nets without
DIP's design: a U-Net with full-width skips, a ResNet without downsampling, a per-pixel MLP of
1x1 convolutions (no spatial prior), and ``pixels``, direct optimisation of a parameter image.

New networks register a builder in ``NETWORKS``: ``builder(in_channels, out_channels, **options)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from dip_cli.errors import InputError
from dip_cli.settings import INPUT_KINDS, UPSAMPLE_MODES, Settings


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    if kernel > 1:
        # Reflection padding avoids the dark borders zero padding teaches the network.
        layers.append(nn.ReflectionPad2d(kernel // 2))
    conv = PointwiseConv if kernel == 1 and stride == 1 else nn.Conv2d
    layers.append(conv(in_ch, out_ch, kernel, stride=stride, bias=True))
    return nn.Sequential(*layers)


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution computed as a matrix product over the channels when the input is
    channels-last (the CPU layout, ``resources.memory_format``): there the pixels' channel vectors
    are contiguous rows, so no copy is made. On one CPU thread PyTorch sends unbatched 1x1
    convolutions to its slow im2col path (oneDNN only with more threads or batch >= 16): on the
    jpeg net's 384 px tiles they took 11 of the 141 ms of a step (135.7 ms with this); with two
    threads oneDNN's is faster (98 vs 103 ms), so it is left to it there. Same parameters, and
    the same results up to rounding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.device.type == "cpu" and torch.get_num_threads() == 1 and x.dim() == 4 and x.shape[1] > 1):
            return super().forward(x)
        if not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        rows = x.permute(0, 2, 3, 1)  # (N, H, W, C), contiguous
        return nn.functional.linear(rows, self.weight[:, :, 0, 0], self.bias).permute(0, 3, 1, 2)


def _bn_act(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True)]


class SkipLevel(nn.Module):
    """One resolution level: skip branch || (down -> inner levels -> up), then merge."""

    def __init__(
        self,
        in_ch: int,
        down_ch: int,
        up_ch: int,
        skip_ch: int,
        inner: SkipLevel | None,
        upsample: str,
    ) -> None:
        super().__init__()
        self.skip = nn.Sequential(_conv(in_ch, skip_ch, 1), *_bn_act(skip_ch)) if skip_ch else None
        self.down = nn.Sequential(
            _conv(in_ch, down_ch, 3, stride=2),
            *_bn_act(down_ch),
            _conv(down_ch, down_ch, 3),
            *_bn_act(down_ch),
        )
        self.inner = inner
        self.upsample = nn.Upsample(scale_factor=2, mode=upsample)
        deeper_ch = inner.out_channels if inner is not None else down_ch
        merged = skip_ch + deeper_ch
        self.merge = nn.Sequential(
            nn.BatchNorm2d(merged),
            _conv(merged, up_ch, 3),
            *_bn_act(up_ch),
            _conv(up_ch, up_ch, 1),
            *_bn_act(up_ch),
        )
        self.out_channels = up_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deeper = self.down(x)
        if self.inner is not None:
            deeper = self.inner(deeper)
        deeper = self.upsample(deeper)
        if self.skip is None:
            return self.merge(deeper)
        skip = self.skip(x)
        # Odd sizes make the two branches differ by a pixel; crop both to the common size.
        h = min(skip.shape[-2], deeper.shape[-2])
        w = min(skip.shape[-1], deeper.shape[-1])
        return self.merge(torch.cat([skip[..., :h, :w], deeper[..., :h, :w]], dim=1))


class Skip(nn.Module):
    """The DIP encoder-decoder with optional skip connections and a sigmoid head."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels_down: Sequence[int],
        channels_up: Sequence[int],
        channels_skip: Sequence[int],
        upsample: str = "bilinear",
    ) -> None:
        super().__init__()
        levels = len(channels_down)
        if not (len(channels_up) == len(channels_skip) == levels) or levels == 0:
            raise ValueError("channels_down, channels_up and channels_skip need the same length")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        # Build from the deepest level outwards so each level owns its inner one.
        inner: SkipLevel | None = None
        for i in reversed(range(levels)):
            level_in = in_channels if i == 0 else channels_down[i - 1]
            inner = SkipLevel(level_in, channels_down[i], channels_up[i], channels_skip[i], inner, upsample)
        assert inner is not None
        self.body = inner
        self.head = nn.Sequential(_conv(channels_up[0], out_channels, 1), nn.Sigmoid())
        self.levels = levels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))


def build_skip(
    in_channels: int,
    out_channels: int,
    *,
    channels_down: Sequence[int] = (128,) * 5,
    channels_up: Sequence[int] | None = None,
    channels_skip: Sequence[int] | None = None,
    upsample: str = "bilinear",
) -> Skip:
    """The DIP skip net; by default 4 skip channels per level and up = down channels."""
    return Skip(
        in_channels,
        out_channels,
        channels_down,
        channels_up if channels_up is not None else channels_down,
        channels_skip if channels_skip is not None else (4,) * len(channels_down),
        upsample,
    )


def build_hourglass(
    in_channels: int,
    out_channels: int,
    *,
    channels_down: Sequence[int] = (128,) * 5,
    channels_up: Sequence[int] | None = None,
    channels_skip: Sequence[int] | None = None,
    upsample: str = "bilinear",
) -> Skip:
    """The skip net without skip connections (the paper's large-hole inpainting net)."""
    if channels_skip is not None and any(channels_skip):
        raise ValueError("an hourglass has no skip connections: set channels_skip to zeros or use 'skip'")
    return build_skip(
        in_channels,
        out_channels,
        channels_down=channels_down,
        channels_up=channels_up,
        channels_skip=(0,) * len(channels_down),
        upsample=upsample,
    )


class UNet(nn.Module):
    """A U-Net (Ronneberger et al. 2015) in DIP's style: every level's full feature map is
    concatenated back on the way up, so a shallow path from input to output always exists.
    The architectures experiment compares it with DIP's skip net, whose skips are 4 channels."""

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int], upsample: str) -> None:
        super().__init__()
        if not channels:
            raise ValueError("a U-Net needs at least one level in channels_down")
        widths = [channels[0], *channels]
        self.start = _double_conv(in_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(_conv(widths[i], widths[i + 1], 3, stride=2), *_bn_act(widths[i + 1]))
            for i in range(len(channels))
        )
        self.ups = nn.ModuleList(
            _double_conv(widths[i + 1] + widths[i], widths[i]) for i in range(len(channels))
        )
        self.upsample = nn.Upsample(scale_factor=2, mode=upsample)
        self.head = nn.Sequential(_conv(widths[0], out_channels, 1), nn.Sigmoid())
        self.levels = len(channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.start(z)
        features = [x]
        for down in self.downs:
            x = down(x)
            features.append(x)
        features.pop()  # the deepest map is x itself
        for up in reversed(self.ups):
            skip = features.pop()
            x = self.upsample(x)[..., : skip.shape[-2], : skip.shape[-1]]
            x = up(torch.cat([skip, x], dim=1))
        return self.head(x)


class ResNet(nn.Module):
    """Residual blocks at full resolution, no down- or upsampling (He et al. 2016's blocks):
    a deep convolutional net without the encoder-decoder's multi-scale bottleneck."""

    def __init__(self, in_channels: int, out_channels: int, channels: int, blocks: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(in_channels, channels, 3), nn.LeakyReLU(0.2, inplace=True))
        self.blocks = nn.ModuleList(
            nn.Sequential(
                _conv(channels, channels, 3),
                *_bn_act(channels),
                _conv(channels, channels, 3),
                nn.BatchNorm2d(channels),
            )
            for _ in range(blocks)
        )
        self.head = nn.Sequential(_conv(channels, out_channels, 3), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.stem(z)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


class PixelMLP(nn.Module):
    """1x1 convolutions only: each output pixel depends on its own input code and nothing
    else. The control with no spatial prior: it fits an image and its shuffled pixels alike."""

    def __init__(self, in_channels: int, out_channels: int, channels: int, layers: int) -> None:
        super().__init__()
        body: list[nn.Module] = []
        width = in_channels
        for _ in range(layers):
            body += [_conv(width, channels, 1), *_bn_act(channels)]
            width = channels
        self.body = nn.Sequential(*body, _conv(width, out_channels, 1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class Pixels(nn.Module):
    """Direct optimisation of the pixels (through a sigmoid, to stay in [0, 1]); the input
    code is ignored. The baseline with no network at all: it reproduces whatever it is fitted to."""

    def __init__(self, out_channels: int, height: int, width: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(1, out_channels, height, width))  # starts mid-grey

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-2:] != self.logits.shape[-2:]:
            raise ValueError(
                f"this pixel image is {tuple(self.logits.shape[-2:])}, the input {tuple(z.shape[-2:])}"
            )
        return torch.sigmoid(self.logits).expand(z.shape[0], -1, -1, -1)


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(in_ch, out_ch, 3), *_bn_act(out_ch), _conv(out_ch, out_ch, 3), *_bn_act(out_ch)
    )


def build_unet(
    in_channels: int,
    out_channels: int,
    *,
    channels_down: Sequence[int] = (32,) * 5,
    upsample: str = "bilinear",
) -> UNet:
    """A U-Net with one strided-conv level per entry of ``channels_down`` and full-width skips."""
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
    return UNet(in_channels, out_channels, channels_down, upsample)


def build_resnet(in_channels: int, out_channels: int, *, channels: int = 32, blocks: int = 8) -> ResNet:
    """``blocks`` residual blocks of ``channels`` channels at the image's resolution."""
    return ResNet(in_channels, out_channels, channels, blocks)


def build_pixel_mlp(in_channels: int, out_channels: int, *, channels: int = 64, layers: int = 4) -> PixelMLP:
    """A per-pixel MLP of ``layers`` hidden 1x1 convolutions."""
    return PixelMLP(in_channels, out_channels, channels, layers)


def build_pixels(in_channels: int, out_channels: int, *, height: int, width: int) -> Pixels:
    """A parameter image of ``height`` x ``width`` (the padded size the fit loop feeds in)."""
    return Pixels(out_channels, height, width)


SIZED_NETWORKS = frozenset({"pixels"})  # builders that take height= and width=

NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "skip": build_skip,
    "hourglass": build_hourglass,
    "unet": build_unet,
    "resnet": build_resnet,
    "pixel-mlp": build_pixel_mlp,
    "pixels": build_pixels,
}


def build_network(kind: str, in_channels: int, out_channels: int, /, **options) -> nn.Module:
    """Build a registered network; ``options`` are the builder's keyword arguments."""
    try:
        builder = NETWORKS[kind]
    except KeyError:
        raise ValueError(f"unknown network {kind!r}; known: {', '.join(sorted(NETWORKS))}") from None
    return builder(in_channels, out_channels, **options)


def build_for_image(
    kind: str, in_channels: int, out_channels: int, height: int, width: int, /, **options
) -> tuple[nn.Module, tuple[int, int]]:
    """The network for an output of ``height`` x ``width``, and the padded size its input z needs.

    Encoder-decoders need sides that divide by 2**levels; ``pixels`` is the one network that
    must know the size itself.
    """
    if kind in SIZED_NETWORKS:
        padded = padded_size(height, width, 1)
        return build_network(
            kind, in_channels, out_channels, height=padded[0], width=padded[1], **options
        ), padded
    net = build_network(kind, in_channels, out_channels, **options)
    return net, padded_size(height, width, size_multiple(net))


def build_for(settings: Settings, channels: int, height: int = 64, width: int = 64):
    """The preset's network for an output of this size, and the padded size of its input.

    A preset may name any registered network with that builder's options; a wrong name or
    option is the preset's error (exit 2), not a crash.
    """
    try:
        return build_for_image(
            settings.network.kind, settings.input.depth, channels, height, width, **settings.network.options
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"preset {settings.source or settings.name}: [network] {exc}") from None


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Round up to the network's multiple, and to at least two of them: BatchNorm at the
    deepest level needs more than one value per channel."""
    return (
        max(math.ceil(height / multiple), 2) * multiple,
        max(math.ceil(width / multiple), 2) * multiple,
    )


def size_multiple(net: nn.Module) -> int:
    """The factor the input's height and width must divide by (2**levels for encoder-decoders)."""
    return 2 ** getattr(net, "levels", 0)


def make_input(kind: str, depth: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """The fixed code z fed to the network: U(0, 0.1) noise, or an (x, y) meshgrid in [0, 1]."""
    if kind == "noise":
        z = torch.rand(1, depth, height, width, generator=generator) * 0.1
    elif kind == "meshgrid":
        ys = torch.linspace(0, 1, height)
        xs = torch.linspace(0, 1, width)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        z = torch.stack([grid_x, grid_y])[None]
    else:
        raise ValueError(f"unknown input kind {kind!r}; known: {', '.join(INPUT_KINDS)}")
    return z


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
