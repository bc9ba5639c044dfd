"""Gain against time for a 1 MP JPEG over tile sides and iteration budgets, from one fit per tile.

    python -m benchmarks.effort_map --tile 544 --iters 2400            # the default's layout
    python -m benchmarks.effort_map --tile 384 --iters 1200 --marks 400 600 800 1200
    python -m benchmarks.effort_map --photo other --tile 544          # the second 1 MP photo

The photo of ``benchmarks.large_photo`` (``--photo four``: four 512 px photos; ``other``: rows
of other content) is saved by Pillow at ``--quality`` and cut into the layout ``dip jpeg --tile
SIDE`` cuts. Every tile is fitted once with the ``jpeg`` preset for ``--iters`` steps, two side
by side on one thread each as ``dip jpeg`` runs them, and the smoothed output is kept at every
mark. With the fixed stop rule and a constant learning rate the fit up to a mark is the fit a
budget of that mark runs, so each mark's row is what ``--iters MARK`` gives: every tile's kept
output finished as ``dip jpeg`` finishes it (the mean with the file's TV decode, in the
quantization box) and blended. Also printed: the fit alone, moved into the box (no blend).

The wall time of a mark is estimated from this run's (fits scale with their steps; the TV
decode and the blend are added as measured); confirm a chosen point with ``benchmarks.large_photo
-- --tile SIDE --iters MARK``, which times the real command.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.large_photo import corrupt, mosaic, other_photo
from dip_cli.core import restore_array
from dip_cli.io import load_image
from dip_cli.jpeg_file import read_jpeg
from dip_cli.metrics import psnr
from dip_cli.operators import JpegModel, to_pixels, to_tensor
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout
from dip_cli.presets import load_preset
from dip_cli.tiles import blend


def fit_tile(y: np.ndarray, operator, iters: int, marks: list[int], seed: int) -> tuple[dict, float]:
    """One tile's smoothed output at each mark (the fit of ``dip jpeg``'s tiles), and its seconds."""
    import torch

    torch.set_num_threads(1)
    kept: dict[int, np.ndarray] = {}
    every = int(np.gcd.reduce(marks))
    settings = load_preset("jpeg").with_overrides(iters=iters)
    options = RunOptions(seed=seed, threads=1, tile="off", save_every=every)
    start = time.perf_counter()
    restore_array(y, operator, settings, options, on_snapshot=lambda i, pixels: _keep(kept, marks, i, pixels))
    return kept, time.perf_counter() - start


def _keep(kept: dict, marks: list[int], iteration: int, pixels: np.ndarray) -> None:
    if iteration in marks:
        kept[iteration] = pixels.copy()


def finished(fitted: np.ndarray, y: np.ndarray, operator, blended: bool) -> tuple[np.ndarray, float]:
    """``dip jpeg``'s output from a tile's fit (``blended``) or the fit moved into the box; seconds."""
    import torch

    operator.blend = blended
    start = time.perf_counter()
    with torch.no_grad():
        out = operator.finish(to_tensor(fitted), to_tensor(y))
    return to_pixels(out.clamp(0, 1)), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photo", choices=("four", "other"), default="four")
    parser.add_argument("--quality", type=int, default=10)
    parser.add_argument("--tile", type=int, default=544, help="the tile side, as dip jpeg --tile")
    parser.add_argument("--iters", type=int, default=2400)
    parser.add_argument("--marks", type=int, nargs="*", default=[400, 600, 800, 1000, 1200, 1600, 2000, 2400])
    parser.add_argument("--jobs", type=int, default=2, help="tiles side by side, one thread each")
    args = parser.parse_args()
    marks = sorted(m for m in args.marks if m <= args.iters) or [args.iters]
    marks = sorted(set(marks) | {args.iters})

    clean = mosaic() if args.photo == "four" else other_photo()
    with tempfile.TemporaryDirectory() as temp:
        path = corrupt(clean, "jpeg", Path(temp), args.quality, 0.0)
        y = load_image(path).pixels
        operator = JpegModel(read_jpeg(path))
    layout = plan_layout(y, operator, args.tile)
    crops = [operator.crop(y, *tile.box) for tile in layout]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(fit_tile, y_tile, op_tile, args.iters, marks, part)
            for part, (y_tile, op_tile) in enumerate(crops)
        ]
        fits = [f.result() for f in futures]
    fit_wall = time.perf_counter() - start
    rounds = -(-len(crops) // args.jobs)
    jpeg_psnr = psnr(y, clean)

    layout_text = f"{len(crops)} tiles of {args.tile} px ({rounds} rounds of {args.jobs})"
    print(f"\n### {args.photo} photo, JPEG q{args.quality} ({jpeg_psnr:.2f} dB), {layout_text}, "
          f"one fit of {args.iters} steps a tile\n")  # fmt: skip
    print(f"fits: {fit_wall:.0f} s wall, {sum(s for _, s in fits):.0f} s of tile fits\n")
    print("| budget | dip jpeg (blend) | fit alone, in the box | est. wall (min) | per quarter (blend) |")
    print("|---|---|---|---|---|")
    for mark in marks:
        gains, decode_seconds = {}, 0.0
        for blended in (True, False):
            outputs = []
            for tile, (y_tile, op_tile), (kept, _) in zip(layout, crops, fits, strict=True):
                pixels, seconds = finished(kept[mark], y_tile, op_tile, blended)
                outputs.append((tile, pixels))
                decode_seconds += seconds if blended else 0.0
            image = np.round(blend(layout, outputs, y.shape[2]) * 255) / 255
            gains[blended] = (psnr(image, clean) - jpeg_psnr, _quarters(image, y, clean))
        wall = fit_wall * mark / args.iters + decode_seconds / args.jobs
        quarters = " / ".join(f"{q:+.2f}" for q in gains[True][1])
        print(f"| {mark} | {gains[True][0]:+.2f} | {gains[False][0]:+.2f} | {wall / 60:.1f} | {quarters} |")


def _quarters(image: np.ndarray, y: np.ndarray, clean: np.ndarray) -> list[float]:
    h, w = clean.shape[0] // 2, clean.shape[1] // 2
    quarters = [(slice(t, t + h), slice(x, x + w)) for t in (0, h) for x in (0, w)]
    return [psnr(image[q], clean[q]) - psnr(y[q], clean[q]) for q in quarters]


if __name__ == "__main__":
    main()
