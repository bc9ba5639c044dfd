"""Tiles vs the whole image: quality, seams and time, on the paper's photos (issue: any size).

    python -m benchmarks.any_size                       # 256 px crops, 160 px tiles (2 x 2)
    python -m benchmarks.any_size --size 512 --tile 256 # the issue's setting (hours on a CPU)
    python -m benchmarks.any_size --cases denoise jpeg --keep out/   # + results and border crops

Cases (from ../shared/data/dip, centre crops of ``--size`` px, the photo first resized so its
short side is ``--size``): F16 with Gaussian noise σ = 25 (``denoise``), F16 saved as JPEG
quality 10 (``jpeg``, the file model), zebra ×4 (``sr``) and library with its mask
(``inpaint``). Each case is restored twice with the same preset and
seed, one after the other: ``--tile off`` and ``--tile N`` (whose tiles dip fits side by side,
one thread each, as it does by default).

Printed per case: PSNR vs the clean crop of the 8-bit result, wall seconds, iterations run (all
tiles together), and the seam ratio: the mean absolute step between neighbouring pixels across
the tile borders divided by the mean step elsewhere (1.0 = borders look like anywhere else), for
the tiled result and, as a control, for the whole-image result at the same positions.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import DATA, as_saved, center_crop, save
from dip_cli.io import Picture, load_image
from dip_cli.jpeg_file import read_jpeg
from dip_cli.metrics import psnr
from dip_cli.operators import JpegModel, encode_jpeg, simulate_downscale, simulate_noise
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout
from dip_cli.settings import SR_KERNELS
from dip_cli.tasks import TASK_TABLE, resolve_settings, restore_picture

CASES = ("denoise", "jpeg", "sr", "inpaint")


def photo(relative: str, size: int) -> np.ndarray:
    image = Image.open(DATA / relative).convert("RGB")
    scale = size / min(image.size)
    if scale != 1:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    return center_crop(np.asarray(image, dtype=np.float32) / 255.0, size)


def library(size: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = load_image(DATA / "inpainting/library.png").pixels
    known = load_image(DATA / "inpainting/library_mask.png").pixels.mean(axis=2) >= 0.5
    scale = size / min(known.shape)
    if scale != 1:  # nearest for the mask: it stays a mask
        height, width = round(known.shape[0] * scale), round(known.shape[1] * scale)
        pixels = (
            np.asarray(
                Image.fromarray(np.uint8(pixels * 255)).resize((width, height), Image.Resampling.LANCZOS),
                dtype=np.float32,
            )
            / 255.0
        )
        known = np.asarray(Image.fromarray(known).resize((width, height), Image.Resampling.NEAREST))
    return center_crop(pixels, size), center_crop(known, size)


def make_case(name: str, size: int, image: str = "denoising/F16_GT.png") -> dict:
    """The observation, the clean image and what the task needs (``image``: the photo for the
    denoising and JPEG cases, a path under ../shared/data/dip)."""
    if name == "denoise":
        clean = photo(image, size)
        return {"task": "denoise", "clean": clean, "observed": simulate_noise(clean, 25, seed=0)}
    if name == "jpeg":
        clean = photo(image, size)
        source = encode_jpeg(clean, 10)
        return {"task": "jpeg", "clean": clean, "observed": _decode(source), "source": source}
    if name == "sr":
        clean = photo("sr/zebra_GT.png", size)
        return {"task": "sr", "clean": clean, "observed": simulate_downscale(clean, 4), "scale": 4}
    clean, known = library(size)
    corrupted = np.where(known[..., None], clean, 0.0).astype(np.float32)
    return {"task": "inpaint", "clean": clean, "observed": corrupted, "known": known}


def _decode(data: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0


def restore(case: dict, tile: str | int, threads: int) -> tuple[np.ndarray, float, int]:
    settings = resolve_settings(case["task"], case.get("preset"), scale=case.get("scale"))
    start = time.perf_counter()
    restored, record = restore_picture(
        case["task"],
        Picture(case["observed"]),
        settings,
        known=case.get("known"),
        scale=case.get("scale"),
        source=case.get("source"),
        options=RunOptions(threads=threads, tile=tile),
    )
    return as_saved(restored.pixels), time.perf_counter() - start, record.iterations


def seam_ratio(pixels: np.ndarray, borders_x: list[int], borders_y: list[int]) -> float:
    """Mean |step| between neighbouring pixels across the borders / mean |step| elsewhere."""
    step_x = np.abs(np.diff(pixels, axis=1)).mean(axis=(0, 2))  # between columns c and c + 1
    step_y = np.abs(np.diff(pixels, axis=0)).mean(axis=(1, 2))
    at = np.concatenate([step_x[[b - 1 for b in borders_x]], step_y[[b - 1 for b in borders_y]]])
    rest_x = np.delete(step_x, [b - 1 for b in borders_x])
    rest_y = np.delete(step_y, [b - 1 for b in borders_y])
    return float(at.mean() / np.concatenate([rest_x, rest_y]).mean())


def border_crop(
    whole: np.ndarray, tiled: np.ndarray, xs: list[int], ys: list[int], side: int = 128
) -> np.ndarray:
    """The whole-image and the tiled result side by side, around the first place where tile
    borders cross, enlarged 2x (nearest): what a seam would look like, if there were one."""
    x, y = xs[0] if xs else whole.shape[1] // 2, ys[0] if ys else whole.shape[0] // 2
    top = int(np.clip(y - side // 2, 0, whole.shape[0] - side))
    left = int(np.clip(x - side // 2, 0, whole.shape[1] - side))
    crops = [
        p[top : top + side, left : left + side].repeat(2, axis=0).repeat(2, axis=1) for p in (whole, tiled)
    ]
    gap = np.ones((2 * side, 6, whole.shape[2]), np.float32)
    return np.concatenate([crops[0], gap, crops[1]], axis=1)


def borders(case: dict, tile: int) -> tuple[list[int], list[int]]:
    """Where tiles start and end inside the image: the lines a seam would show on."""
    operator = _operator(case)
    layout = plan_layout(case["observed"], operator, tile)
    xs = {t.left for t in layout if t.left} | {
        t.left + t.width for t in layout if t.left + t.width < layout.width
    }
    ys = {t.top for t in layout if t.top} | {
        t.top + t.height for t in layout if t.top + t.height < layout.height
    }
    return sorted(xs), sorted(ys)


def _operator(case: dict):
    if case["task"] == "jpeg":
        return JpegModel(read_jpeg(case["source"]))
    picture = Picture(case["observed"])
    # dip sr's default kernel for the SR case (the others ignore it)
    known, scale, source = case.get("known"), case.get("scale"), case.get("source")
    return TASK_TABLE[case["task"]].operator(picture, known, scale, source, SR_KERNELS[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--tile", type=int, default=160, help="tile side in pixels")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="save the results and border crops here")
    args = parser.parse_args()

    rows = []
    for name in args.cases:
        case = make_case(name, args.size)
        whole, whole_s, whole_it = restore(case, "off", args.threads)
        tiled, tiled_s, tiled_it = restore(case, args.tile, args.threads)
        xs, ys = borders(case, args.tile)
        row = {
            "case": name,
            "whole": psnr(whole, case["clean"]),
            "tiled": psnr(tiled, case["clean"]),
            "whole_s": whole_s,
            "tiled_s": tiled_s,
            "iters": (whole_it, tiled_it),
            "seam": seam_ratio(tiled, xs, ys),
            "seam_whole": seam_ratio(whole, xs, ys),
        }
        rows.append(row)
        print(row, flush=True)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            save(args.keep / f"{name}_whole.png", whole)
            save(args.keep / f"{name}_tiled_{args.tile}.png", tiled)
            save(args.keep / f"{name}_border.png", border_crop(whole, tiled, xs, ys))

    setting = f"{args.size} px crops, tiles of {args.tile} px, defaults, {args.threads} threads"
    print(f"\n{setting}, one restore at a time (its tiles side by side where dip runs them so)\n")
    print("| case | whole PSNR | tiled PSNR | Δ dB | whole s | tiled s | iterations whole / tiled ", end="")
    print("| seam ratio tiled (whole) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['whole']:.2f} | {r['tiled']:.2f} | {r['tiled'] - r['whole']:+.2f} | "
            f"{r['whole_s']:.0f} | {r['tiled_s']:.0f} | {r['iters'][0]} / {r['iters'][1]} | "
            f"{r['seam']:.2f} ({r['seam_whole']:.2f}) |"
        )


if __name__ == "__main__":
    main()
