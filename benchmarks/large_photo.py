"""A 1 MP photo through the real CLI: wall time, peak memory and PSNR over the run (issue: any size).

    python -m benchmarks.large_photo                    # dip jpeg, quality 10, defaults (~75 min on 2 cores)
    python -m benchmarks.large_photo -- --tile off      # the whole image as one fit, with its curve
    python -m benchmarks.large_photo --task denoise     # dip denoise, sigma 25 (hours on a CPU), + NLM
    python -m benchmarks.large_photo --keep out/        # keep the photo, the result and the run folder
    python -m benchmarks.large_photo --size 4000x3000 --keep big/   # 12 MP (hours on a CPU)
    python -m benchmarks.large_photo --size 4000x3000 --keep big/ -- --resume   # after a kill

The photo is a 1024 x 1024 mosaic (1.05 MP) of four real 512 px photos, none upscaled: the
paper's F16, kate and barbara (grayscale, as RGB; ../shared/data/dip) and scikit-image's
astronaut; ``--size`` repeats that mosaic to any size (each tile is still its own fit, so
repeats do not help one another). It is saved as
a JPEG at quality 10 by Pillow's libjpeg (its default 4:2:0), or given Gaussian noise (sigma 25)
and saved as PNG. Then ``dip <task> photo --save-every 200`` runs in a child process with the
task's defaults, exactly as a user types it; the script reads its wall time, the peak memory
of the child and its tile workers together (``common.tree_pss``), the PSNR of the saved result
and, for a whole-image fit (``--tile off``; tiles keep no snapshots), of every snapshot: the
smoothed output every 200 iterations, before a JPEG's final projection, so the table shows
what a shorter budget would have given.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import DATA, save, tree_pss
from dip_cli.io import load_image
from dip_cli.metrics import psnr

SIDE = 512
PHOTOS = ("denoising/F16_GT.png", "inpainting/kate.png", "restoration/barbara.png", "astronaut")
SNAPSHOT_EVERY = 200


def photo_512(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data

        pixels = data.astronaut().astype(np.float32) / 255.0
    else:
        pixels = load_image(DATA / name).pixels
    if pixels.shape[2] == 1:  # barbara is grayscale: a black-and-white print in the album
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:SIDE, :SIDE, :3])


def mosaic(width: int = 2 * SIDE, height: int = 2 * SIDE) -> np.ndarray:
    """Four real 512 px photos side by side (1024 x 1024), repeated to ``width`` x ``height``;
    8-bit values."""
    a, b, c, d = (photo_512(name) for name in PHOTOS)
    pixels = np.concatenate([np.concatenate([a, b], axis=1), np.concatenate([c, d], axis=1)], axis=0)
    pixels = np.tile(pixels, (-(-height // (2 * SIDE)), -(-width // (2 * SIDE)), 1))[:height, :width]
    return np.round(pixels * 255) / 255


def other_photo() -> np.ndarray:
    """A second 1024 x 1024 photo of other content, for settings chosen on ``mosaic``: rows of
    real photos, none upscaled, with more texture (scikit-image's coffee, the paper's library,
    its zebra, the cameraman, grass and gravel); 8-bit values."""
    from skimage import data

    def rgb(pixels: np.ndarray) -> np.ndarray:
        pixels = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels
        return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]

    library = load_image(DATA / "inpainting/library.png").pixels
    zebra = load_image(DATA / "sr/zebra_GT.png").pixels
    rows = [
        [rgb(data.coffee()), library[:400, :424]],  # 400 px tall: 600 + 424 wide
        [zebra[:388, :584], rgb(data.camera())[:388, :440]],  # 388 px: 584 + 440
        [rgb(data.grass())[:236], rgb(data.gravel())[:236]],  # 236 px: 512 + 512
    ]
    pixels = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    return np.round(pixels * 255) / 255


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 4000x3000, got {text!r}") from None
    return width, height


def corrupt(clean: np.ndarray, task: str, folder: Path, quality: int, sigma: float) -> Path:
    if task == "jpeg":
        path = folder / "photo.jpg"
        Image.fromarray(np.uint8(np.round(clean * 255))).save(path, "JPEG", quality=quality)
        return path
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1)
    return save(folder / "photo.png", np.round(noisy * 255) / 255)


def run_cli(task: str, source: Path, output: Path, extra: list[str]) -> tuple[float, float, float, int]:
    """``dip task source -o output`` in a child process: wall seconds, CPU seconds of the child
    and its workers, the peak of their memory together (proportional set sizes, summed every
    2 s: memory they share, such as torch's libraries, counted once; GB), exit code. (Reading
    the sizes walks each process's page tables: every 0.2 s it took 16% of a core here,
    slowing the fit.) A killed run continues when run again with the same folder and
    ``-- --resume``; the figures are then those of the resumed part."""
    command = [sys.executable, "-m", "dip_cli", task, str(source), "-o", str(output)]
    command += ["--save-every", str(SNAPSHOT_EVERY), *extra]
    print("$", " ".join(command[2:]), file=sys.stderr, flush=True)
    start, cpu_before = time.perf_counter(), _children_cpu()
    child = subprocess.Popen(command)
    peak = 0
    while child.poll() is None:
        peak = max(peak, sum(tree_pss(child.pid)))
        time.sleep(2)
    # The workers are waited for by dip, and dip by us: their CPU time is in RUSAGE_CHILDREN.
    return time.perf_counter() - start, _children_cpu() - cpu_before, peak / 1e9, child.returncode


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def nlm_baseline(noisy: np.ndarray, clean: np.ndarray, sigma: float) -> float:
    """scikit-image's non-local means with the sigma given, its usual h = 0.8 sigma."""
    from skimage.restoration import denoise_nl_means

    result = denoise_nl_means(
        noisy,
        h=0.8 * sigma / 255,
        sigma=sigma / 255,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )
    return psnr(np.round(np.clip(result, 0, 1) * 255) / 255, clean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("jpeg", "denoise"), default="jpeg")
    parser.add_argument("--quality", type=int, default=10)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--size", type=parse_size, default=(2 * SIDE, 2 * SIDE), help="WIDTHxHEIGHT")
    parser.add_argument(
        "--photo", choices=("four", "other"), default="four",
        help="four: the four 512 px photos (repeated to --size); other: the 1 MP photo of other content",
    )  # fmt: skip
    parser.add_argument(
        "--keep", type=Path, help="keep the photo, the result and the run folder here (-- --resume continues)"
    )
    parser.add_argument("extra", nargs="*", help="more dip options, after --, e.g. -- --iters 1200")
    args = parser.parse_args()
    clean = mosaic(*args.size) if args.photo == "four" else other_photo()
    with tempfile.TemporaryDirectory() as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        source = corrupt(clean, args.task, folder, args.quality, args.sigma)  # the same bytes again
        observed = load_image(source).pixels
        output = folder / "photo.restored.png"
        seconds, cpu_seconds, peak_gb, code = run_cli(args.task, source, output, args.extra)
        if code != 0:  # interrupted (130, 143) or failed: what this part cost, for a resumed run's sum
            sys.exit(
                f"dip exited {code} after {seconds / 60:.1f} min wall, {cpu_seconds / 60:.1f} min CPU, "
                f"peak {peak_gb:.2f} GB" + ("; rerun with -- --resume to continue" if args.keep else "")
            )
        result = psnr(load_image(output).pixels, clean)
        snapshots = sorted(folder.glob("*.dip/snapshots/iter_*.png"))
        curve = [(int(p.stem.split("_")[1]), psnr(load_image(p).pixels, clean)) for p in snapshots]
        baseline = nlm_baseline(observed, clean, args.sigma) if args.task == "denoise" else None
    label = f"JPEG q{args.quality}" if args.task == "jpeg" else f"sigma {args.sigma:g}"
    size = f"{clean.shape[1]} x {clean.shape[0]}"
    print(f"\n### `dip {args.task}` on a {size} photo ({label}), defaults {' '.join(args.extra)}\n")
    print("| input | result | gain | wall time | CPU time | peak memory |" + (" NLM |" if baseline else ""))
    print("|---|---|---|---|---|---|" + ("---|" if baseline else ""))
    row = f"| {psnr(observed, clean):.2f} | {result:.2f} | {result - psnr(observed, clean):+.2f} "
    row += f"| {seconds / 60:.1f} min | {cpu_seconds / 60:.1f} min | {peak_gb:.2f} GB |"
    print(row + (f" {baseline:.2f} |" if baseline else ""))
    print("\n| iteration | snapshot PSNR (before any final projection) |\n|---|---|")
    for iteration, value in curve:
        print(f"| {iteration} | {value:.2f} |")


if __name__ == "__main__":
    main()
