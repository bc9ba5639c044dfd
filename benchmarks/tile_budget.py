"""Is the denoising budget long enough for a tile of a large photo? PSNR along a long fit.

    python -m benchmarks.tile_budget                 # tiles 6 and 8 of the 1 MP photo, 5000 it
    python -m benchmarks.tile_budget --tiles 4 --iters 6000

The 1 MP photo of ``benchmarks.large_photo --task denoise`` (four real photos, Gaussian noise
sigma 25, the same bytes) is cut into the layout ``dip denoise`` picked for it (3 x 3 tiles of
384 px on this 2-core machine, as that run's run.json recorded; ``--tile``). Each tile asked for
is fitted alone with the ``denoise`` preset and a budget of ``--iters``, its early stop told
never to fire (patience longer than the budget) so the whole curve is seen, one thread each,
the tiles side by side. Printed per tile: its PSNR against the clean tile every 500 iterations,
the best and where it was, the output ES-WMV would keep with the preset's noise floor within
the whole budget, and scikit-image's NLM on
the same tile (the issue's baseline).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.large_photo import corrupt, mosaic, nlm_baseline
from dip_cli.core import restore_array
from dip_cli.io import load_image
from dip_cli.operators import Identity
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout
from dip_cli.presets import load_preset

SIGMA = 25.0


def fit_tile(noisy: np.ndarray, clean: np.ndarray, iters: int, folder: Path) -> dict:
    settings = load_preset("denoise").with_overrides(iters=iters)
    settings = replace(settings, stop=replace(settings.stop, patience=10 * iters))  # see it all
    options = RunOptions(threads=1, tile="off", save_every=10 * iters, run_dir=folder)
    _, record = restore_array(noisy, Identity(), settings, options, reference=clean)
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "iteration": np.array([int(r["iteration"]) for r in rows]),
        "psnr": np.array([float(r["psnr_reference"]) for r in rows]),
        "kept": (record.selected_iteration, record.psnr_reference),
        "nlm": nlm_baseline(noisy, clean, SIGMA),
        "seconds": record.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiles", type=int, nargs="*", default=[6, 8], help="tile indices")
    parser.add_argument("--iters", type=int, default=5000)
    parser.add_argument("--tile", type=int, default=384, help="tile side of the layout")
    args = parser.parse_args()

    clean = mosaic()
    with tempfile.TemporaryDirectory() as scratch:
        noisy = load_image(corrupt(clean, "denoise", Path(scratch), 10, SIGMA)).pixels
        tiles = list(plan_layout(noisy, Identity(), args.tile))
        boxes = [tiles[i].box for i in args.tiles]
        crops = [(noisy[t : t + h, x : x + w], clean[t : t + h, x : x + w]) for t, x, h, w in boxes]
        with ProcessPoolExecutor(max_workers=len(crops)) as pool:
            futures = [
                pool.submit(fit_tile, y, x, args.iters, Path(scratch) / f"tile{i}")
                for i, (y, x) in zip(args.tiles, crops, strict=True)
            ]
            results = [f.result() for f in futures]

    marks = list(range(500, args.iters + 1, 500))
    print(f"\n1 MP photo, sigma {SIGMA:g}, `denoise` preset, {args.iters} iterations, one thread a tile\n")
    header = " | ".join(str(m) for m in marks)
    print(f"| tile (top, left, h, w) | {header} | best (at) | kept by ES | NLM | s |")
    print("|---" * (len(marks) + 5) + "|")
    for index, box, r in zip(args.tiles, boxes, results, strict=True):
        at = [f"{r['psnr'][r['iteration'] == m][0]:.2f}" for m in marks]
        best = int(np.argmax(r["psnr"]))
        kept_at, kept = r["kept"]
        print(
            f"| {index} {tuple(box)} | " + " | ".join(at)
            + f" | {r['psnr'][best]:.2f} ({r['iteration'][best]}) | {kept:.2f} ({kept_at}) "
            f"| {r['nlm']:.2f} | {r['seconds']:.0f} |"
        )  # fmt: skip


if __name__ == "__main__":
    main()
