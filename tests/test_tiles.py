"""Tile layout and blending (numpy only): coverage, overlaps, alignment, partition of unity."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from dip_cli.errors import InputError
from dip_cli.tiles import Accumulator, Tile, TileLayout, blend, blend_weights, plan_tiles

SIZES = [(1, 1), (7, 13), (100, 37), (257, 513), (1000, 999)]
SPECS = [(8, 0), (16, 4), (64, 16), (33, 20), (512, 64)]  # (tile, overlap); 33/20 overlaps > half a tile
MULTIPLES = [1, 2, 4]


def _aligned(size: int, multiple: int) -> int:
    """The largest multiple of ``multiple`` not above ``size`` (at least ``multiple``)."""
    return max(size - size % multiple, multiple)


CASES = [
    pytest.param(_aligned(h, m), _aligned(w, m), t, o, m, id=f"{h}x{w}-t{t}o{o}-m{m}")
    for (h, w), (t, o), m in itertools.product(SIZES, SPECS, MULTIPLES)
    if h * w // t**2 < 5000  # 1000 x 999 in 8- or 16-px tiles: 4,000+ tiles, slow and adds nothing
]


def _segments_overlaps(segments) -> list[int]:
    return [s0 + l0 - s1 for (s0, l0), (s1, _) in itertools.pairwise(segments)]


def _paste(layout: TileLayout, value) -> np.ndarray:
    """Σ over tiles of value(tile), an (h, w) array, placed at the tile."""
    total = np.zeros((layout.height, layout.width))
    for t in layout:
        total[t.rows, t.cols] += value(t)
    return total


def _cut(image: np.ndarray, layout: TileLayout) -> list[tuple[Tile, np.ndarray]]:
    return [(t, image[t.rows, t.cols]) for t in layout]


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), CASES)
def test_tiles_cover_the_image_within_bounds_aligned_and_overlapping(height, width, tile, overlap, multiple):
    layout = plan_tiles(height, width, tile, overlap, multiple=multiple)
    assert layout.tile <= tile and layout.overlap >= overlap
    assert layout.tile % multiple == 0 and layout.overlap % multiple == 0
    assert [t.index for t in layout] == list(range(len(layout)))
    assert sorted(layout.tiles, key=lambda t: (t.top, t.left)) == list(layout.tiles)  # row-major
    for t in layout:
        assert t.top >= 0 and t.left >= 0
        assert t.top + t.height <= height and t.left + t.width <= width
        assert 1 <= t.height <= tile and 1 <= t.width <= tile
        assert all(v % multiple == 0 for v in t.box), t
    assert _paste(layout, lambda t: 1).min() >= 1  # every pixel covered
    for segments, size in ((layout.row_segments, height), (layout.col_segments, width)):
        _assert_one_side_no_deeper_than_needed(segments, size, layout)
    for segments in (layout.row_segments, layout.col_segments):
        assert all(o >= overlap for o in _segments_overlaps(segments))
        starts = [s for s, _ in segments]
        strides = np.diff(starts)
        assert len(strides) == 0 or strides.max() - strides.min() <= multiple  # equally spaced


def _assert_one_side_no_deeper_than_needed(segments, size: int, layout: TileLayout) -> None:
    """An axis's tiles share one side: the image's when one tile spans it, else the smallest
    (in units of ``multiple``) with which that many tiles still overlap by the layout's overlap."""
    m, k = layout.multiple, len(segments)
    sides = [length for _, length in segments]
    if k == 1:
        assert sides == [size]
        return
    side = max(sides)
    assert side % m == 0 and min(sides) > side - m  # only a partial unit at the border is shorter
    n, s, o = -(-size // m), side // m, layout.overlap // m
    assert k * s - (k - 1) * o >= n  # k tiles of this side cover the axis with the overlap
    assert k * (s - 1) - (k - 1) * o < n  # one unit less would not
    assert (k - 1) * (layout.tile // m) - (k - 2) * o < n  # and one tile fewer of the full side would not


def test_tiles_shrink_to_the_overlap_asked_for_not_deeper():
    """1024 px in 512 px tiles needs three per side; three of 512 would overlap by 256 px and
    fit 2.25x the image's pixels. They shrink to 384 px (overlap 64): 1.27x."""
    layout = plan_tiles(1024, 1024, 512, 64, multiple=16)
    assert layout.grid == (3, 3)
    assert {(t.height, t.width) for t in layout} == {(384, 384)}
    assert _segments_overlaps(layout.col_segments) == [64, 64]
    assert sum(t.height * t.width for t in layout) / 1024**2 < 1.3


@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 13), (512, 512), (100, 512)])
def test_an_image_no_larger_than_a_tile_is_one_tile(height, width):
    layout = plan_tiles(height, width, 512, 64)
    assert layout.tiles == (Tile(0, 0, 0, height, width),)
    np.testing.assert_array_equal(blend_weights(layout.tiles[0], layout), np.ones((height, width)))


def test_an_axis_no_longer_than_a_tile_gets_one_tile_spanning_it():
    layout = plan_tiles(100, 2000, 256, 32)
    assert layout.grid == (1, 9)
    assert {(t.top, t.height) for t in layout} == {(0, 100)}


def test_tile_count_of_a_12_mp_photo_by_hand():
    # 4000 wide x 3000 tall, tile 512, overlap 64: tiles advance by at most 512 - 64 = 448 px.
    # Along the width: the first tile covers 512 px and each further tile adds at most 448 more,
    #   so k tiles need 512 + (k - 1) * 448 >= 4000, i.e. k >= 1 + 3488 / 448 = 8.79 -> 9 tiles.
    #   Nine tiles of side s overlapping by 64 cover 9 s - 8 * 64 px, so s = ceil(4512 / 9) = 502;
    #   stride (4000 - 502) / 8 = 437.25, rounded to 437 or 438: overlaps 64 or 65.
    # Along the height: 512 + (k - 1) * 448 >= 3000 -> k >= 1 + 2488 / 448 = 6.55 -> 7 tiles of
    #   s = ceil(3384 / 7) = 484; stride 2516 / 6 = 419.33, rounded: overlaps 64 or 65.
    # 7 rows x 9 columns = 63 tiles of 484 x 502.
    layout = plan_tiles(3000, 4000, 512, 64)
    assert layout.grid == (7, 9) and len(layout) == 63
    assert {(t.height, t.width) for t in layout} == {(484, 502)}
    assert [s for s, _ in layout.col_segments] == [round(437.25 * i) for i in range(9)]
    assert set(_segments_overlaps(layout.col_segments)) == {64, 65}
    assert set(_segments_overlaps(layout.row_segments)) == {64, 65}
    assert plan_tiles(4000, 3000, 512, 64).grid == (9, 7)  # portrait: the same 63


def test_tile_and_overlap_are_rounded_to_the_multiple():
    layout = plan_tiles(1024, 1024, 250, 30, multiple=16)
    assert (layout.tile, layout.overlap) == (240, 32)  # tile rounded down, overlap up
    assert all(v % 16 == 0 for t in layout for v in t.box)


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), CASES)
def test_windows_are_a_partition_of_unity(height, width, tile, overlap, multiple):
    layout = plan_tiles(height, width, tile, overlap, multiple=multiple)
    windows = {t.index: blend_weights(t, layout) for t in layout}
    for t in layout:
        w = windows[t.index]
        assert w.dtype == np.float32 and w.shape == (t.height, t.width)
        assert w.min() > 0  # every fitted pixel contributes: no division by a zero sum anywhere
    total = _paste(layout, lambda t: windows[t.index])
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)
    # A pixel that only one tile covers gets that tile's full weight, whatever its position.
    only = _paste(layout, lambda t: 1) == 1
    np.testing.assert_array_equal(total[only], 1.0)


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), CASES)
def test_blending_tiles_cut_from_an_image_gives_the_image_back(height, width, tile, overlap, multiple):
    layout = plan_tiles(height, width, tile, overlap, multiple=multiple)
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    np.testing.assert_allclose(blend(layout, _cut(image, layout), 3), image, rtol=0, atol=2e-6)
    constant = np.full((height, width, 1), 0.37, np.float32)
    np.testing.assert_allclose(blend(layout, _cut(constant, layout), 1), constant, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"),
    [(3000, 4000, 512, 64), (972, 972, 512, 64), (257, 513, 64, 16), (100, 37, 16, 4), (200, 300, 40, 0)],
)
def test_windows_are_smooth(height, width, tile, overlap):
    # A window is flat 1 except sin² ramps across each real overlap of L >= overlap px, sampled at
    # pixel centres; d/du sin²(πu/2) = (π/2)·sin(πu) <= π/2, so one pixel (du = 1/L) steps by at
    # most π/(2L). Where at most two tiles meet along an axis the per-axis normalisation changes
    # nothing and that bound is exact. Where three meet (972 px: tiles at 0, 230, 460 all cover
    # 460..511) the normalisation steepens the ramps a little: 1.67/L at worst over 20,000 random
    # layouts with overlap <= tile / 2, so 2/L is asserted there.
    layout = plan_tiles(height, width, tile, overlap)
    for axis, segments, size in ((0, layout.row_segments, height), (1, layout.col_segments, width)):
        positive = [o for o in _segments_overlaps(segments) if o > 0]
        if not positive:
            continue
        count = np.zeros(size)
        for s, n in segments:
            count[s : s + n] += 1
        bound = (math.pi / 2 if count.max() <= 2 else 2.0) / min(positive) + 1e-6
        steepest = max(np.abs(np.diff(blend_weights(t, layout), axis=axis)).max(initial=0) for t in layout)
        assert steepest <= bound, (axis, steepest, bound)
    assert plan_tiles(972, 972, 512, 64).grid == (3, 3)  # the three-tile case really is one


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), CASES)
def test_windows_are_not_tapered_at_the_image_border(height, width, tile, overlap, multiple):
    # The outermost line of the image belongs to one tile only along that axis, so a window is at
    # its full height there (its largest value across the border), and the image corners are 1.
    layout = plan_tiles(height, width, tile, overlap, multiple=multiple)
    for t in layout:
        w = blend_weights(t, layout)
        if t.top == 0:
            np.testing.assert_array_equal(w[0], w.max(axis=0))
        if t.top + t.height == height:
            np.testing.assert_array_equal(w[-1], w.max(axis=0))
        if t.left == 0:
            np.testing.assert_array_equal(w[:, 0], w.max(axis=1))
        if t.left + t.width == width:
            np.testing.assert_array_equal(w[:, -1], w.max(axis=1))
    cols = layout.grid[1]
    corners = [(0, 0, 0), (cols - 1, 0, -1), (len(layout) - cols, -1, 0), (len(layout) - 1, -1, -1)]
    for index, y, x in corners:
        assert blend_weights(layout.tiles[index], layout)[y, x] == 1.0


def test_the_top_left_tile_has_full_weight_until_its_neighbours_begin():
    layout = plan_tiles(1000, 999, 128, 32)
    w = blend_weights(layout.tiles[0], layout)
    r1, c1 = layout.row_segments[1][0], layout.col_segments[1][0]
    np.testing.assert_array_equal(w[:r1, :c1], 1.0)
    assert w[-1, -1] < 0.01  # deep in the overlap with three neighbours


@pytest.mark.parametrize("multiple", MULTIPLES)
def test_the_accumulator_matches_blend_in_any_order(multiple):
    layout = plan_tiles(_aligned(257, multiple), _aligned(513, multiple), 64, 16, multiple=multiple)
    rng = np.random.default_rng(1)
    outputs = [(t, rng.random((t.height, t.width, 3), dtype=np.float32)) for t in layout]
    expected = blend(layout, outputs, 3)
    acc = Accumulator(layout, 3)
    assert acc.missing == tuple(range(len(layout)))
    for tile, pixels in reversed(outputs):
        acc.add(tile, pixels)
    assert acc.missing == ()
    result = acc.result()
    assert result.dtype == np.float32 and result.shape == (layout.height, layout.width, 3)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)
    assert acc.result() is result


def test_the_accumulator_takes_gray_tiles_as_2d():
    layout = plan_tiles(40, 50, 16, 4)
    image = np.random.default_rng(2).random((40, 50))
    acc = Accumulator(layout, 1)
    for tile, pixels in _cut(image, layout):
        acc.add(tile, pixels)
    np.testing.assert_allclose(acc.result()[..., 0], image, rtol=0, atol=1e-6)


def test_the_accumulator_refuses_wrong_tiles_and_early_results():
    layout = plan_tiles(40, 50, 16, 4)
    acc = Accumulator(layout, 3)
    first = layout.tiles[0]
    with pytest.raises(InputError, match=r"pixels of shape \(16, 16\), expected \(16, 16, 3\)"):
        acc.add(first, np.zeros((16, 16)))
    acc.add(first, np.zeros((16, 16, 3)))
    with pytest.raises(InputError, match="tile 0 was already added"):
        acc.add(first, np.zeros((16, 16, 3)))
    with pytest.raises(InputError, match="not a tile of this layout"):
        acc.add(Tile(1, 3, 3, 16, 16), np.zeros((16, 16, 3)))
    with pytest.raises(InputError, match=rf"{len(layout) - 1} tile\(s\) not added yet: \[1, 2,"):
        acc.result()
    with pytest.raises(InputError, match="channels must be at least 1, got 0"):
        Accumulator(layout, 0)


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), CASES[::7])
def test_as_dict_round_trips_through_json(height, width, tile, overlap, multiple):
    layout = plan_tiles(height, width, tile, overlap, multiple=multiple)
    record = json.loads(json.dumps(layout.as_dict()))
    assert record["count"] == len(layout) and record["grid"] == list(layout.grid)
    assert record["boxes"][0] == [0, 0, *layout.tiles[0].box[2:]]
    assert TileLayout.from_dict(record) == layout


def test_from_dict_refuses_broken_records():
    record = plan_tiles(100, 100, 40, 8).as_dict()
    with pytest.raises(InputError, match="not a tile layout record"):
        TileLayout.from_dict({k: v for k, v in record.items() if k != "boxes"})
    with pytest.raises(InputError, match="count 5 and grid"):
        TileLayout.from_dict({**record, "count": 5})
    gap = [list(b) for b in record["boxes"]]
    gap[1][1] += 8  # the second column moves right: a seam without overlap
    with pytest.raises(InputError, match="breaks the row-major grid"):
        TileLayout.from_dict({**record, "boxes": gap})


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 10, 8, 2), {}, "height must be at least 1, got 0"),
        ((10, -3, 8, 2), {}, "width must be at least 1, got -3"),
        ((10, 10, 0, 0), {}, "tile must be at least 1, got 0"),
        ((10, 10, 8, -1), {}, "overlap must be 0 or more, got -1"),
        ((10, 10, 8, 8), {}, r"overlap \(8\) must be smaller than tile \(8\)"),
        ((10, 10, 8, 2), {"multiple": 0}, "multiple must be at least 1, got 0"),
        ((32, 32, 3, 0), {"multiple": 4}, r"tile \(3\) must be at least multiple \(4\)"),
        (
            (32, 32, 9, 5),
            {"multiple": 4},
            r"overlap \(5, rounded up to 8\) must be smaller than tile \(9, rounded",
        ),
    ],
)
def test_bad_layouts_are_refused_with_the_value_named(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_tiles(*args, **kwargs)


@pytest.mark.parametrize(("height", "width"), [(100, 92), (517, 250), (30, 1000)])
def test_a_side_off_the_grid_ends_in_a_shorter_last_tile(height, width):
    # A JPEG's MCU grid (16 px for 4:2:0) need not divide the image: every tile starts on the
    # grid, and only the tile at the border ends off it, at the border.
    layout = plan_tiles(height, width, 48, 16, multiple=16)
    assert _paste(layout, lambda t: 1).min() >= 1
    for t in layout:
        assert t.top % 16 == 0 and t.left % 16 == 0 and t.height <= 48 and t.width <= 48
        assert t.height % 16 == 0 or t.top + t.height == height
        assert t.width % 16 == 0 or t.left + t.width == width
    for segments in (layout.row_segments, layout.col_segments):
        assert all(o >= 16 for o in _segments_overlaps(segments))
    image = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    np.testing.assert_allclose(blend(layout, _cut(image, layout), 3), image, atol=1e-6)


def test_tile_helpers():
    tile = Tile(3, 8, 16, 32, 24)
    assert (tile.rows, tile.cols, tile.box) == (slice(8, 40), slice(16, 40), (8, 16, 32, 24))
    assert tile.downscaled(4) == Tile(3, 2, 4, 8, 6)
    with pytest.raises(InputError, match=r"not a whole number of 16-px cells"):
        tile.downscaled(16)
    image = np.arange(64 * 64).reshape(64, 64)
    assert image[tile.rows, tile.cols].shape == (32, 24)


def test_sr_tiles_map_to_whole_low_res_pixels():
    layout = plan_tiles(4 * 131, 4 * 77, 128, 16, multiple=4)
    low = [t.downscaled(4) for t in layout]
    assert max(t.top + t.height for t in low) == 131 and max(t.left + t.width for t in low) == 77
