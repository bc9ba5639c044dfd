"""What each tile's early stop kept: a tiled denoising run's tiles, kept vs the best they reached.

    python -m benchmarks.large_photo --task denoise --keep mp1/ -- --reference mp1/clean.png
    python -m benchmarks.tile_stops mp1/photo.dip mp1/photo.png mp1/clean.png

A run given ``--reference`` logs, for every tile and every step, the PSNR of the kept (smoothed)
output against the clean image (``tiles/NNNN/metrics.csv``). Printed per tile: the noise
level dip estimated from the noisy tile (run.json's ``noise_sigma_estimate``) against the
noise the tile really has (noisy - clean; below the nominal sigma where the photo clips at
black or white), where the fit stopped, the output it kept, the best output it produced before
it stopped, and the gap between the two. The photo's figure at the end is computed from the
tiles' mean squared errors (overlaps count in both tiles, so it is close to, not equal to, the
blended image's PSNR).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from dip_cli.io import load_image


def read_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([int(r["iteration"]) for r in rows]), np.array([float(r["psnr_reference"]) for r in rows])


def photo_psnr(values: list[float]) -> float:
    return float(-10 * np.log10(np.mean([10 ** (-v / 10) for v in values])))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="the run folder (photo.dip) of a tiled run with --reference")
    parser.add_argument("noisy", type=Path, help="the noisy photo it restored")
    parser.add_argument("clean", type=Path, help="the clean photo")
    args = parser.parse_args()
    plan = json.loads((args.run / "tiles" / "plan.json").read_text())
    noise = load_image(args.noisy).pixels - load_image(args.clean).pixels

    print("| tile (top, left, side) | σ estimated / true (×255) | stopped at | kept: iteration, PSNR "
          "| best before the stop | gap dB |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    kept_values, best_values, gaps, whole_budget = [], [], [], 0
    for index, (top, left, height, width) in enumerate(plan["boxes"]):
        folder = args.run / "tiles" / f"{index:04d}"
        if not (folder / "run.json").is_file() or not (folder / "metrics.csv").is_file():
            continue  # not started
        record = json.loads((folder / "run.json").read_text())
        result = record.get("result")
        if result is None or result.get("psnr_reference") is None:
            continue  # unfinished, or run without --reference
        iterations, curve = read_curve(folder / "metrics.csv")
        best = int(np.argmax(curve))
        true = 255 * float(np.sqrt(np.mean(noise[top : top + height, left : left + width] ** 2)))
        kept = result["psnr_reference"]
        gap = curve[best] - kept
        kept_values.append(kept)
        best_values.append(float(curve[best]))
        gaps.append(gap)
        whole_budget += result["stop_reason"] != "early-stop"
        stopped = f"{result['iterations']} ({result['stop_reason']})"
        print(
            f"| {index} ({top}, {left}, {height}) | {record['noise_sigma_estimate']:.1f} / {true:.1f} "
            f"| {stopped} | {result['selected_iteration']}, {kept:.2f} "
            f"| {iterations[best]}, {curve[best]:.2f} | {gap:.2f} |"
        )
    if not gaps:
        raise SystemExit("no finished tile with a reference: run dip with --reference")
    kept_photo, best_photo = photo_psnr(kept_values), photo_psnr(best_values)
    print(
        f"\n{len(gaps)} tiles: kept {kept_photo:.2f} dB, best seen {best_photo:.2f} dB "
        f"(from the tiles' MSE); gap median {np.median(gaps):.2f}, max {max(gaps):.2f} dB; "
        f"{whole_budget} ran their whole budget"
    )


if __name__ == "__main__":
    main()
