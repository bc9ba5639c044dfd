"""The paper's experiments side by side: dip defaults, dip *-paper presets, classical baselines.

    python -m benchmarks.paper --size cpu      # center crops, ~15 min on 2 CPU cores
    python -m benchmarks.paper --size paper    # full images at paper settings (for a GPU)

Uses the paper's own images in ../shared/data/dip: denoising F16 (sigma = 25, seeded noise),
inpainting kate (text mask), vase and library (their masks), 50% missing pixels on barbara
(seeded Bernoulli mask), super-resolution x4 of zebra (low-res made with the same Lanczos-2
downsampler as the paper), and JPEG: F16 at quality 10.

With --size cpu every image is cropped to 80 px (zebra: 96 px high-res; inpainting crops are
placed where the hole fraction matches the whole image's, the others centred) and each *-paper
preset gets the wall-clock time the default took (the paper's iteration counts would take
hours at 2.2 M parameters on a CPU). With --size paper the full images are used, and the
*-paper presets run their full budgets. Baselines: skimage NLM / TV (best of a small grid
scored against the clean image, which favours them), biharmonic inpainting, bicubic, the
decoded JPEG itself, CBM3D when the optional bm3d package is installed. The DIP paper's
own figure is shown where it reports one; it is for full images, so compare with --size paper.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from benchmarks.common import (
    DATA,
    bicubic,
    cbm3d,
    center_crop,
    iterations_for,
    nlm,
    run_dip,
    tv,
)
from dip_cli.io import decode_image, load_image
from dip_cli.metrics import psnr, ssim
from dip_cli.operators import (
    biharmonic_fill,
    encode_jpeg,
    simulate_downscale,
    simulate_missing_pixels,
    simulate_noise,
)

SIGMA = 25


@dataclass
class Experiment:
    name: str
    task: str
    clean: np.ndarray
    observed: np.ndarray
    paper_preset: str
    known: np.ndarray | None = None
    scale: int | None = None
    published: str = "—"
    source: bytes | None = None  # the JPEG file, for dip jpeg
    baselines: dict[str, np.ndarray] = field(default_factory=dict)


def image(relative: str, size: int | None) -> np.ndarray:
    pixels = load_image(DATA / relative).pixels
    return pixels if size is None else center_crop(pixels, size)


def hole_crop(image_path: str, mask_path: str, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask cropped where the hole fraction is closest to the whole image's.

    A plain center crop of sparse text can miss every hole; this keeps the crop representative.
    """
    pixels = load_image(DATA / image_path).pixels
    known = load_image(DATA / mask_path).pixels.mean(axis=2) >= 0.5
    if size is None:
        return pixels, known
    overall = 1 - known.mean()
    best, best_score = (0, 0), np.inf
    for top in range(0, known.shape[0] - size + 1, 8):
        for left in range(0, known.shape[1] - size + 1, 8):
            fraction = 1 - known[top : top + size, left : left + size].mean()
            score = abs(fraction - overall) if fraction > 0 else np.inf
            if score < best_score:
                best, best_score = (top, left), score
    window = (slice(best[0], best[0] + size), slice(best[1], best[1] + size))
    return pixels[window], known[window]


def experiments(size: int | None, sr_size: int | None) -> list[Experiment]:
    result = []
    f16 = image("denoising/F16_GT.png", size)
    noisy = simulate_noise(f16, SIGMA, seed=0)
    baselines = {"NLM": nlm(noisy, f16, SIGMA)[0], "TV": tv(noisy, f16)[0]}
    if (bm := cbm3d(noisy, SIGMA)) is not None:
        baselines["CBM3D"] = bm
    result.append(
        Experiment(
            "denoise F16 σ=25",
            "denoise",
            f16,
            noisy,
            "denoise-paper",
            published="29.22 / 30.43 EMA (mean of 9 images)",
            baselines=baselines,
        )
    )
    for name in ("kate", "vase", "library"):
        clean, known = hole_crop(f"inpainting/{name}.png", f"inpainting/{name}_mask.png", size)
        corrupted = np.where(known[..., None], clean, 0.0).astype(np.float32)
        preset = "inpaint-paper" if name == "kate" else "inpaint-hole-paper"
        result.append(
            Experiment(
                f"inpaint {name}",
                "inpaint",
                clean,
                corrupted,
                preset,
                known=known,
                baselines={"biharmonic": biharmonic_fill(corrupted, known)},
            )
        )
    barbara = image("restoration/barbara.png", size)
    known = simulate_missing_pixels(barbara.shape[:2], 0.5, seed=0)
    dropped = np.where(known[..., None], barbara, 0.0).astype(np.float32)
    result.append(
        Experiment(
            "50% missing barbara",
            "inpaint",
            barbara,
            dropped,
            "inpaint-pixels-paper",
            known=known,
            published="32.22 (full image)",
            baselines={"biharmonic": biharmonic_fill(dropped, known)},
        )
    )
    zebra = image("sr/zebra_GT.png", sr_size)
    zebra = zebra[: zebra.shape[0] // 4 * 4, : zebra.shape[1] // 4 * 4]
    low = simulate_downscale(zebra, 4)
    result.append(
        Experiment(
            "SR x4 zebra",
            "sr",
            zebra,
            low,
            "sr4-paper",
            scale=4,
            published="27.00 (Set14 mean)",
            baselines={"bicubic": bicubic(low, 4)},
        )
    )
    data = encode_jpeg(f16, 10)
    jpeg = decode_image(data).pixels
    result.append(
        Experiment(
            "JPEG q10 F16", "jpeg", f16, jpeg, "jpeg-paper", source=data, baselines={"JPEG input": jpeg}
        )
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("cpu", "paper"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny crops and budgets: checks the script runs")
    args = parser.parse_args()
    if args.quick:
        size, sr_size = 32, 48
    elif args.size == "cpu":
        size, sr_size = 80, 96
    else:
        size = sr_size = None
    rows = []
    for ex in experiments(size, sr_size):
        common = {"scale": ex.scale, "source": ex.source}
        quick = {"iters": 20} if args.quick else {}
        default = run_dip(ex.task, ex.observed, ex.clean, ex.known, **common, **quick)
        if args.size == "paper" and not args.quick:
            paper_iters = None
        elif args.quick:
            paper_iters = 5
        else:
            extra = {"known": ex.known} if ex.known is not None else {}
            paper_iters = iterations_for(
                default["seconds"], ex.task, ex.observed, ex.paper_preset, **common, **extra
            )
        paper = run_dip(
            ex.task,
            ex.observed,
            ex.clean,
            ex.known,
            preset=ex.paper_preset,
            iters=paper_iters,
            **common,
        )
        rows.append((ex, default, paper, paper_iters))
        print(
            f"done {ex.name}: default {default['psnr']:.2f}, paper {paper['psnr']:.2f}",
            file=sys.stderr,
            flush=True,
        )

    where = (
        "80 px crops (zebra 96 px HR; inpainting crops as holey as the whole image)"
        if size
        else "full images"
    )
    budget = "the *-paper preset given the default's wall time" if size else "the *-paper preset, full budget"
    print(f"\n### The paper's experiments on {where}: PSNR dB / SSIM (seconds)\n")
    print(f"Columns: dip default; {budget}; classical baselines; the published DIP figure.\n")
    print("| experiment | input | dip default | dip *-paper | baselines | published DIP |")
    print("|---|---|---|---|---|---|")
    for ex, default, paper, paper_iters in rows:
        observed_score = "—" if ex.task == "sr" else f"{psnr(ex.observed, ex.clean):.2f}"
        base = ", ".join(
            f"{k} {psnr(v, ex.clean):.2f} / {ssim(v, ex.clean):.3f}" for k, v in ex.baselines.items()
        )
        iters = f", {paper_iters} it" if paper_iters else ""
        print(
            f"| {ex.name} | {observed_score} | {default['psnr']:.2f} / {default['ssim']:.3f} "
            f"({default['seconds']:.0f}s, {default['iterations']} it) | "
            f"{paper['psnr']:.2f} / {paper['ssim']:.3f} ({paper['seconds']:.0f}s{iters}) | "
            f"{base} | {ex.published} |"
        )


if __name__ == "__main__":
    main()
