"""Untrained generator networks and their fixed input codes.

The "skip" encoder-decoder follows DIP (Ulyanov et al., models/skip.py of the original code):
each level has an optional 1x1 skip branch and a deeper branch (strided 3x3 conv down, 3x3
conv, the next level, upsample x2); the two are concatenated and merged by BN, 3x3 conv and
1x1 conv. Every conv uses reflection padding and a bias, every activation is LeakyReLU(0.2),
and a 1x1 conv + sigmoid head maps to the image. ``hourglass`` is the same net without skips.

New networks register a builder in ``NETWORKS``: ``builder(in_channels, out_channels, **options)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from dip_cli.presets import INPUT_KINDS, UPSAMPLE_MODES


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    if kernel > 1:
        # Reflection padding avoids the dark borders zero padding teaches the network.
        layers.append(nn.ReflectionPad2d(kernel // 2))
    layers.append(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, bias=True))
    return nn.Sequential(*layers)


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


NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "skip": build_skip,
    "hourglass": build_hourglass,
}


def build_network(kind: str, in_channels: int, out_channels: int, **options) -> nn.Module:
    """Build a registered network; ``options`` are the builder's keyword arguments."""
    try:
        builder = NETWORKS[kind]
    except KeyError:
        raise ValueError(f"unknown network {kind!r}; known: {', '.join(sorted(NETWORKS))}") from None
    return builder(in_channels, out_channels, **options)


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
