"""Tile layout and blending: restore a large image as overlapping tiles, then blend them seamlessly.

Why tiles. A DIP fit holds the network's activations for the whole output at every step, so
memory and time grow with the image; a 24 MP photo does not fit. Cutting the output into tiles
bounds memory by the tile, not the image. Each tile is its own DIP problem (its own network and
its own input z, fitted to its own crop of the observation) and the restored tiles are blended
with a smooth window. Fitting one network on random crops of the whole image was measured not
to work: the network's receptive field spans the crop, so it learns crops, not the image.

The layout (``plan_tiles``), per axis:

- An axis no longer than the tile gets one tile spanning it.
- Otherwise it gets the fewest tiles of side at most ``tile`` whose neighbours overlap by at
  least ``overlap``: ``k = ceil((n - overlap) / (tile - overlap))``, all of the same side, the
  smallest with which k tiles overlap by ``overlap``: ``ceil((n + (k - 1) overlap) / k)``
  (fitting pixels twice costs time, so overlaps are no deeper than asked). No sliver at the
  end: the first starts at 0, the last ends at the border, and the origins in between are
  equally spaced (rounded), so any slack is spread evenly over all overlaps.
- With ``multiple = m`` every origin and size is a multiple of ``m``: ``tile`` is rounded down
  and ``overlap`` up to multiples of ``m``, and the image sides must be multiples of ``m``. An
  x``m`` super-resolution tile then maps to whole low-res pixels (``Tile.downscaled``); ``m = 8``
  or 16 keeps tiles on a JPEG block grid.

The 2-D layout is the product of the two axes' layouts, in row-major order (tile 0 top-left).

The blend (``blend_weights``, ``blend``, ``Accumulator``): each tile's window is a product of
two 1-D windows, flat 1 inside and a raised-cosine (sin²) ramp across each overlap with a
neighbour, untapered at the image border. Facing ramps over the same overlap sum to exactly 1
(sin² + cos²), and each axis's windows are also divided by their sum, so the windows are a
partition of unity at every pixel even when overlaps are deep enough that three tiles meet.
The blended image is ``Σ w_t·x_t`` (the weights sum to one); identical content in every tile
comes back as is, to float32 rounding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from dip_cli.errors import InputError

Segment = tuple[int, int]  # (start, length) along one axis


@dataclass(frozen=True)
class Tile:
    """One tile, in output pixels (the restored image's)."""

    index: int
    top: int
    left: int
    height: int
    width: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    @property
    def cols(self) -> slice:
        return slice(self.left, self.left + self.width)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.top, self.left, self.height, self.width)

    def downscaled(self, factor: int) -> Tile:
        """The same tile in an image ``factor`` times smaller: an SR tile's low-res input crop."""
        if factor < 1 or any(v % factor for v in self.box):
            raise InputError(f"tile {self.index} box {self.box} is not a whole number of {factor}-px cells")
        top, left, height, width = (v // factor for v in self.box)
        return Tile(self.index, top, left, height, width)


@dataclass(frozen=True)
class TileLayout:
    """The tiles of one image. ``tile`` and ``overlap`` are the effective (rounded) values."""

    height: int
    width: int
    tile: int
    overlap: int
    tiles: tuple[Tile, ...]
    multiple: int = 1

    def __post_init__(self) -> None:
        _check_sizes(self.tile, self.overlap, self.multiple)
        _check_grid(self)

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    @cached_property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of tiles."""
        cols = sum(1 for t in self.tiles if t.top == self.tiles[0].top)
        return (len(self.tiles) // cols, cols)

    @cached_property
    def row_segments(self) -> tuple[Segment, ...]:
        return tuple((t.top, t.height) for t in self.tiles[:: self.grid[1]])

    @cached_property
    def col_segments(self) -> tuple[Segment, ...]:
        return tuple((t.left, t.width) for t in self.tiles[: self.grid[1]])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for run.json; ``from_dict`` reads it back."""
        return {
            "height": self.height,
            "width": self.width,
            "tile": self.tile,
            "overlap": self.overlap,
            "multiple": self.multiple,
            "count": len(self.tiles),
            "grid": list(self.grid),
            "boxes": [list(t.box) for t in self.tiles],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TileLayout:
        """The inverse of ``as_dict``; a hand-edited or inconsistent record raises ``InputError``."""
        try:
            boxes = [tuple(int(v) for v in box) for box in data["boxes"]]
            tiles = tuple(Tile(i, *box) for i, box in enumerate(boxes))
            sizes = [int(data[key]) for key in ("height", "width", "tile", "overlap")]
            layout = cls(*sizes, tiles, int(data.get("multiple", 1)))
        except (KeyError, TypeError) as exc:
            raise InputError(f"not a tile layout record ({exc!r}); expected the keys of as_dict()") from exc
        count, grid = data.get("count", len(tiles)), list(data.get("grid", layout.grid))
        if count != len(tiles) or grid != list(layout.grid):
            raise InputError(
                f"tile layout record: count {count} and grid {grid} disagree with "
                f"its {len(tiles)} boxes in a {layout.grid} grid"
            )
        return layout


def plan_tiles(height: int, width: int, tile: int, overlap: int, *, multiple: int = 1) -> TileLayout:
    """Tiles of at most ``tile`` x ``tile`` covering the image, neighbours overlapping ``overlap``+
    (tiles are shrunk to the smallest side that still covers with that overlap).

    See the module docstring for the rules; ``tile`` is rounded down and ``overlap`` up to
    multiples of ``multiple``, and the layout records the rounded values.
    """
    for name, value in (("height", height), ("width", width), ("tile", tile), ("multiple", multiple)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if overlap < 0:
        raise InputError(f"overlap must be 0 or more, got {overlap}")
    if overlap >= tile:
        raise InputError(f"overlap ({overlap}) must be smaller than tile ({tile})")
    if tile < multiple:
        raise InputError(f"tile ({tile}) must be at least multiple ({multiple})")
    tile_m = tile // multiple * multiple
    overlap_m = -(-overlap // multiple) * multiple
    if overlap_m >= tile_m:
        raise InputError(
            f"overlap ({overlap}, rounded up to {overlap_m}) must be smaller than tile "
            f"({tile}, rounded down to {tile_m}) for multiple {multiple}: lower overlap or raise tile"
        )
    rows = _axis_segments(height, tile_m, overlap_m, multiple)
    cols = _axis_segments(width, tile_m, overlap_m, multiple)
    tiles = tuple(
        Tile(r * len(cols) + c, top, left, h, w)
        for r, (top, h) in enumerate(rows)
        for c, (left, w) in enumerate(cols)
    )
    return TileLayout(height, width, tile_m, overlap_m, tiles, multiple)


def _axis_segments(size: int, tile: int, overlap: int, multiple: int) -> tuple[Segment, ...]:
    """Equally spaced full-size segments, first at 0, last ending at ``size``, in units of ``multiple``.

    With k = ceil((n - o) / (t - o)) segments the ideal stride (n - t) / (k - 1) is at most t - o,
    and rounding each origin moves a stride to its floor or ceiling, never past t - o.
    """
    if size <= tile:
        return ((0, size),)
    # A side that is not a whole number of units (a JPEG's partial MCU at the border) is planned
    # as the next whole number; the last segment then ends at the border, shorter by < multiple.
    n, t, o = -(-size // multiple), tile // multiple, overlap // multiple
    k = math.ceil((n - o) / (t - o))
    # The smallest side with which k tiles still overlap by o: k full tiles of side t would
    # overlap far deeper (1024 px in 512 px tiles: three overlapping by 256), and every pixel
    # fitted twice costs a whole budget of steps.
    t = -(-(n + (k - 1) * o) // k)
    starts = [round(i * (n - t) / (k - 1)) for i in range(k)]
    return tuple((s * multiple, min(t * multiple, size - s * multiple)) for s in starts)


def _check_sizes(tile: int, overlap: int, multiple: int) -> None:
    if multiple < 1 or tile < 1 or not 0 <= overlap < tile:
        raise InputError(
            f"tile layout needs tile >= 1, 0 <= overlap < tile, multiple >= 1; "
            f"got tile={tile}, overlap={overlap}, multiple={multiple}"
        )


def _check_grid(layout: TileLayout) -> None:
    """A layout must be a row-major product of two axis layouts that cover the image: the
    blend's partition of unity relies on it (per-axis windows multiply)."""
    if not layout.tiles:
        raise InputError("tile layout has no tiles")
    rows, cols = layout.grid
    if rows * cols != len(layout.tiles):
        raise InputError(f"tile layout: {len(layout.tiles)} tiles do not form a grid of {cols} columns")
    row_segs, col_segs = layout.row_segments, layout.col_segments
    for i, t in enumerate(layout.tiles):
        expected = Tile(
            i, row_segs[i // cols][0], col_segs[i % cols][0], row_segs[i // cols][1], col_segs[i % cols][1]
        )
        if t != expected:
            raise InputError(f"tile layout: tile {t} breaks the row-major grid (expected {expected})")
    _check_axis("rows", row_segs, layout.height, layout)
    _check_axis("columns", col_segs, layout.width, layout)


def _check_axis(name: str, segments: tuple[Segment, ...], size: int, layout: TileLayout) -> None:
    m = layout.multiple
    if segments[0][0] != 0 or sum(segments[-1]) != size:
        raise InputError(f"tile layout {name} {segments} do not span 0..{size}")
    for start, length in segments:
        off_grid = start % m or (length % m and start + length != size)  # only the last may end off it
        if length < 1 or length > layout.tile or off_grid:
            raise InputError(
                f"tile layout {name}: segment ({start}, {length}) is empty, larger than "
                f"the tile {layout.tile}, or off the {m}-px grid"
            )
    for (s0, l0), (s1, l1) in itertools.pairwise(segments):
        if not s0 < s1 or not s0 + l0 < s1 + l1 or s0 + l0 - s1 < layout.overlap:
            raise InputError(
                f"tile layout {name}: ({s0}, {l0}) and ({s1}, {l1}) are out of order "
                f"or overlap by less than {layout.overlap}"
            )


def _ramp(length: int) -> np.ndarray:
    """A raised-cosine rise over ``length`` pixels, sampled at pixel centres: > 0, < 1, and
    ``_ramp(L) + _ramp(L)[::-1] == 1``, so facing ramps over one overlap sum to one."""
    return np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / length) ** 2


@lru_cache(maxsize=16)
def _axis_windows(segments: tuple[Segment, ...], size: int) -> tuple[np.ndarray, ...]:
    """Each segment's 1-D window: ramps across the overlaps with its neighbours, flat 1 elsewhere
    (including at the image border), then divided by the sum so the windows add to one."""
    raw = []
    for i, (start, length) in enumerate(segments):
        w = np.ones(length)
        if i > 0 and (rise := sum(segments[i - 1]) - start) > 0:
            w[:rise] *= _ramp(rise)
        if i < len(segments) - 1 and (fall := start + length - segments[i + 1][0]) > 0:
            w[length - fall :] *= _ramp(fall)[::-1]
        raw.append(w)
    total = np.zeros(size)
    for (start, length), w in zip(segments, raw, strict=True):
        total[start : start + length] += w
    windows = tuple(w / total[start : start + len(w)] for (start, _), w in zip(segments, raw, strict=True))
    for w in windows:
        w.flags.writeable = False  # cached: shared between callers
    return windows


def blend_weights(tile: Tile, layout: TileLayout) -> np.ndarray:
    """The (height, width) float32 window of ``tile``; the windows of all tiles sum to one."""
    cols = layout.grid[1]
    wy = _axis_windows(layout.row_segments, layout.height)[tile.index // cols]
    wx = _axis_windows(layout.col_segments, layout.width)[tile.index % cols]
    return np.outer(wy, wx).astype(np.float32)


class Accumulator:
    """Blends tiles as they arrive: memory is one float32 image.

    ``add`` each tile once (any order); ``result`` returns the image. The windows are a
    partition of unity, so Σ w·x needs no division and no weight plane (0.1 GB at 24 MP).
    """

    def __init__(self, layout: TileLayout, channels: int) -> None:
        if channels < 1:
            raise InputError(f"channels must be at least 1, got {channels}")
        self.layout, self.channels = layout, channels
        self._image = np.zeros((layout.height, layout.width, channels), np.float32)
        self._added: set[int] = set()
        self._done = False

    @property
    def missing(self) -> tuple[int, ...]:
        """Indices of the tiles not added yet."""
        return tuple(t.index for t in self.layout.tiles if t.index not in self._added)

    def add(self, tile: Tile, pixels: np.ndarray) -> None:
        """Add one restored tile: (h, w, C), or (h, w) when C is 1, any real dtype."""
        if self._done:
            raise InputError("Accumulator.add after result(): the image is already final")
        if tile.index >= len(self.layout) or self.layout.tiles[tile.index] != tile:
            raise InputError(f"{tile} is not a tile of this layout")
        if tile.index in self._added:
            raise InputError(f"tile {tile.index} was already added")
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim == 2 and self.channels == 1:
            pixels = pixels[..., None]
        if pixels.shape != (tile.height, tile.width, self.channels):
            raise InputError(
                f"tile {tile.index}: pixels of shape {pixels.shape}, expected "
                f"{(tile.height, tile.width, self.channels)}"
            )
        w = blend_weights(tile, self.layout)
        self._image[tile.rows, tile.cols] += pixels * w[..., None]
        self._added.add(tile.index)

    def result(self) -> np.ndarray:
        """The blended (H, W, C) float32 image, Σ w·x; every tile must have been added."""
        if not self._done:
            if missing := self.missing:
                raise InputError(f"cannot blend: {len(missing)} tile(s) not added yet: {list(missing)[:10]}")
            self._done = True
        return self._image


def blend(layout: TileLayout, outputs: Iterable[tuple[Tile, np.ndarray]], channels: int) -> np.ndarray:
    """Blend restored tiles into the (H, W, C) float32 image; each tile exactly once."""
    acc = Accumulator(layout, channels)
    for tile, pixels in outputs:
        acc.add(tile, pixels)
    return acc.result()
