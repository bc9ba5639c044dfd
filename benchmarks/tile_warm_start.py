"""Warm-starting a tile from its finished neighbour's weights vs a fresh initialisation.

    python -m benchmarks.tile_warm_start                    # F16, 256 px, 160 px tiles (2 x 2)
    python -m benchmarks.tile_warm_start --cases jpeg --size 320

Neighbouring tiles of one photo hold similar content, so a network trained on one tile may be
a better start for the next than random weights (MetaDIP reports ~10x fewer iterations from a
learned initialisation). Each case is restored in tiles twice, with the task's default preset
and the same seeds: every tile from fresh random weights, and every tile after the first from
the previous tile's trained weights (its own fresh code z either way). Per tile after the first
it prints the PSNR against the clean tile at the end, the best over the run and where it was,
and the first iteration at which the warm-started tile reached the fresh tile's final PSNR
(the budget a warm start would need for the same quality). The cases are those of
``benchmarks.any_size``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.any_size import CASES, _operator, make_case
from benchmarks.common import as_saved
from dip_cli.metrics import psnr
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout, restore_in_tiles
from dip_cli.run_folder import RunFolder
from dip_cli.tasks import resolve_settings


def curves(run_dir: Path, count: int) -> list[np.ndarray]:
    """Each tile's PSNR against its clean part, per iteration (its metrics.csv)."""
    result = []
    for index in range(count):
        with open(run_dir / "tiles" / f"{index:04d}" / "metrics.csv", newline="") as f:
            result.append(np.array([float(row["psnr_reference"]) for row in csv.DictReader(f)]))
    return result


def run_case(name: str, size: int, tile: int, threads: int, image: str) -> None:
    case = make_case(name, size, image)
    settings = resolve_settings(case["task"], case.get("preset"), scale=case.get("scale"))
    operator = _operator(case)
    layout = plan_layout(case["observed"], operator, tile)
    outcome = {}
    for warm in (False, True):
        with tempfile.TemporaryDirectory() as folder, RunFolder(Path(folder) / "run") as run:
            start = time.perf_counter()
            pixels, _ = restore_in_tiles(
                case["observed"], operator, settings, layout, RunOptions(threads=threads),
                reference=case["clean"], run=run, warm_start=warm,
            )  # fmt: skip
            outcome[warm] = {
                "psnr": psnr(as_saved(pixels), case["clean"]),
                "seconds": time.perf_counter() - start,
                "curves": curves(Path(folder) / "run", len(layout)),
            }
    print(f"\n{name} {image}: {size} px, {len(layout)} tiles of {layout.tile} px, preset {settings.name}")
    fresh, warm = outcome[False], outcome[True]
    print(f"whole image: fresh {fresh['psnr']:.2f} dB ({fresh['seconds']:.0f} s), warm {warm['psnr']:.2f} dB")
    print("| tile | fresh final / best (at) | warm final / best (at) | warm reaches fresh final at |")
    print("|---|---|---|---|")
    for index in range(1, len(layout)):
        f, w = fresh["curves"][index], warm["curves"][index]
        reached = np.flatnonzero(w >= f[-1])
        at = f"{reached[0] + 1} of {len(f)}" if reached.size else "never"
        print(
            f"| {index} | {f[-1]:.2f} / {f.max():.2f} ({f.argmax() + 1}) | "
            f"{w[-1]:.2f} / {w.max():.2f} ({w.argmax() + 1}) | {at} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tile", type=int, default=160)
    parser.add_argument("--cases", nargs="*", default=["denoise", "jpeg"], choices=CASES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image", default="denoising/F16_GT.png", help="photo under ../shared/data/dip")
    args = parser.parse_args()
    for name in args.cases:
        run_case(name, args.size, args.tile, args.threads, args.image)


if __name__ == "__main__":
    main()
