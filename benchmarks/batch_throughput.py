"""Throughput of a folder of JPEG-artifacted photos: one command per image vs one batch command.

    python -m benchmarks.batch_throughput                 # 6 crops of 128 px, 400 iterations each
    python -m benchmarks.batch_throughput --count 8 --workers 2 4 --device cuda

The inputs are 128 px crops of the paper's photos (../shared/data/dip), saved as JPEG at quality
10. Each way of running is timed end to end as a user runs it (a fresh ``dip`` process, so the
≈5 s torch import counts):

- ``loop``: one ``dip jpeg IMAGE`` per image, one after another (a shell loop);
- ``batch``: one ``dip jpeg FOLDER --workers 1`` (one process, images one at a time);
- ``batch -w N``: the same with N worker processes sharing the cores (on a CPU the default
  is one per core, up to 4);
- ``ray local``: one ``dip jpeg FOLDER --ray local`` (Ray started on this machine, each image one
  Ray task with one CPU; Ray's start-up counts). With ``--gpu-shares 1 0.25 0.125`` on a GPU
  machine, one row per ``--gpus-per-image`` share (several fits on one GPU at once).

The budget is cut to 400 iterations (of the preset's 2400) to keep the run short: the figures
are throughput; at 400 iterations the outputs are still below the JPEG's PSNR. The PSNR column
is there to show that the ways of running give the same quality.

It prints images per minute, the ratio to the loop, and the largest pixel difference from the
one-image runs (the same seed gives the same image however the batch is run, up to the order of
floating-point sums, which depends on the thread count).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import DATA, center_crop
from dip_cli.io import load_image
from dip_cli.metrics import psnr

SOURCES = (
    "denoising/F16_GT.png",
    "restoration/barbara.png",
    "inpainting/kate.png",
    "inpainting/library.png",
    "inpainting/vase.png",
    "sr/zebra_GT.png",
    "denoising/snail.jpg",
    "flash_no_flash/cave01_00_flash.jpg",
)


def make_inputs(folder: Path, clean_folder: Path, count: int, size: int) -> list[Path]:
    """``count`` JPEG q10 crops of ``size`` px from the paper's photos (two crops per photo past 8);
    the clean crops go to ``clean_folder`` as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    clean_folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        source = DATA / SOURCES[index % len(SOURCES)]
        image = Image.open(source).convert("RGB")
        scale = 2 * size / min(image.size)  # keep some context: the crop is a quarter of the photo
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
        pixels = np.asarray(image)
        shift = (index // len(SOURCES)) * size // 2
        crop = center_crop(pixels[shift:], size)
        path = folder / f"{index:02d}_{source.stem}.jpg"
        Image.fromarray(crop).save(path, quality=10)
        Image.fromarray(crop).save(clean_folder / f"{path.stem}.png")
        paths.append(path)
    return paths


def run(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dip_cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dip {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def mean_psnr(folder: Path, clean_folder: Path, names: list[str]) -> float:
    return float(
        np.mean([psnr(load_image(folder / n).pixels, load_image(clean_folder / n).pixels) for n in names])
    )


def largest_difference(first: Path, second: Path, names: list[str]) -> float:
    """Largest pixel difference between two runs' outputs, in 8-bit levels (0 = identical)."""
    return max(
        float(np.abs(load_image(first / n).pixels - load_image(second / n).pixels).max()) * 255 for n in names
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=6, help="images in the folder")
    parser.add_argument("--size", type=int, default=128, help="crop side in pixels")
    parser.add_argument("--iters", type=int, default=400, help="iterations per image (fixed budget)")
    parser.add_argument("--workers", type=int, nargs="*", default=[2], help="worker counts to try")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray row (Ray not installed)")
    parser.add_argument(
        "--gpu-shares", type=float, nargs="*", default=[], help="Ray rows with these --gpus-per-image"
    )
    parser.add_argument("--keep", type=Path, help="keep the inputs and outputs in this folder")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="dip-batch-"))
    inputs = make_inputs(work / "in", work / "clean", args.count, args.size)
    names = [f"{p.stem}.png" for p in inputs]
    common = ["--iters", str(args.iters), "--stop", "fixed", "--device", args.device, "-q"]

    timings: dict[str, float] = {}
    quality: dict[str, float] = {}
    loop_dir = work / "loop"
    timings["loop"] = sum(
        run(["jpeg", str(p), "-o", str(loop_dir / f"{p.stem}.png"), *common]) for p in inputs
    )
    timings["batch"] = run(["jpeg", str(work / "in"), "-o", str(work / "batch"), "--workers", "1", *common])
    difference = {"batch": largest_difference(loop_dir, work / "batch", names)}
    quality["loop"], quality["batch"] = (
        mean_psnr(d, work / "clean", names) for d in (loop_dir, work / "batch")
    )
    for workers in args.workers:
        label = f"batch -w {workers}"
        out = work / f"batch-w{workers}"
        timings[label] = run(["jpeg", str(work / "in"), "-o", str(out), "--workers", str(workers), *common])
        difference[label] = largest_difference(loop_dir, out, names)
        quality[label] = mean_psnr(out, work / "clean", names)

    ray_rows = [] if args.no_ray else [("ray local", ["--ray", "local"])]
    ray_rows += [
        (f"ray, {g:g} GPU/image", ["--ray", "local", "--gpus-per-image", str(g)]) for g in args.gpu_shares
    ]
    for label, options in ray_rows:
        out = work / label.replace(" ", "-").replace(",", "").replace("/", "-")
        timings[label] = run(["jpeg", str(work / "in"), "-o", str(out), *options, *common])
        difference[label] = largest_difference(loop_dir, out, names)
        quality[label] = mean_psnr(out, work / "clean", names)

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "CPU"
    print(
        f"\n{args.count} JPEG q10 crops of {args.size} px, {args.iters} iterations each, preset jpeg, "
        f"on {device} ({torch.get_num_threads()} threads available)\n"
    )
    jpeg_psnr = float(
        np.mean(
            [psnr(load_image(p).pixels, load_image(work / "clean" / f"{p.stem}.png").pixels) for p in inputs]
        )
    )
    print(f"mean PSNR of the JPEG inputs vs the clean crops: {jpeg_psnr:.2f} dB\n")
    print("| how | wall s | images/min | vs loop | mean PSNR vs clean | max pixel diff. vs loop (8-bit) |")
    print("|---|---|---|---|---|---|")
    for label, seconds in timings.items():
        rate = 60 * args.count / seconds
        diff = "-" if label == "loop" else f"{difference[label]:.0f}"
        ratio = timings["loop"] / seconds
        print(f"| {label} | {seconds:.1f} | {rate:.2f} | {ratio:.2f}x | {quality[label]:.2f} | {diff} |")
    print(
        "\nWorkers run with fewer threads each (cores / workers), so their floating-point sums are "
        "reduced in another order, and a fit amplifies such differences over hundreds of steps: "
        "pixels differ, the quality does not (PSNR column). With the same --threads the images are identical."
    )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
