"""JPEG artifact removal: the file-model loss against today's pixel loss, on real JPEG files.

Each crop is encoded by Pillow's libjpeg (its default 4:2:0 chroma subsampling, and 4:4:4)
at quality 10 and 20, then restored by ``dip jpeg``'s defaults twice: fitting the file's own
DCT coefficients (``operators.JpegModel``, the default for JPEG files; scored before and after
its finish: the blend with the file's decodes and the projection into the quantization box) and
fitting the decoded RGB pixels (what dip did before, and still does for a PNG of a decoded
JPEG). PSNR/SSIM are against the clean crop, on the 8-bit result a user saves.

    python -m benchmarks.jpeg_quality            # 8 crops x (q10, q20) x (4:2:0, 4:4:4) x 2 losses
    python -m benchmarks.jpeg_quality --quick    # checks that it runs
    python -m benchmarks.jpeg_quality --qualities 10 --subsampling 4:2:0 --dequantize laplacian
"""

from __future__ import annotations

import argparse
import io
import sys
import time

import numpy as np
from PIL import Image

from benchmarks.common import DATA, as_saved, measure_all
from dip_cli.io import decode_image, load_image
from dip_cli.metrics import psnr, ssim
from dip_cli.options import RunOptions
from dip_cli.tasks import resolve_settings, restore_picture

# The paper's images and photos bundled with scikit-image; each gives its centre crop.
SOURCES = {
    "F16": lambda: load_image(DATA / "denoising" / "F16_GT.png").pixels,
    "zebra": lambda: load_image(DATA / "sr" / "zebra_GT.png").pixels,
    "vase": lambda: load_image(DATA / "inpainting" / "vase.png").pixels,
    "kate": lambda: load_image(DATA / "inpainting" / "kate.png").pixels,
    "astronaut": lambda: _skimage("astronaut"),
    "coffee": lambda: _skimage("coffee"),
    "chelsea": lambda: _skimage("chelsea"),
    "rocket": lambda: _skimage("rocket"),
}
SUBSAMPLING = {"4:2:0": 2, "4:4:4": 0}  # Pillow's subsampling codes


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()[..., :3].astype(np.float32) / 255.0


def crop(pixels: np.ndarray, size: int) -> np.ndarray:
    top, left = (pixels.shape[0] - size) // 2, (pixels.shape[1] - size) // 2
    return np.ascontiguousarray(pixels[top : top + size, left : left + size, :3])


def encode(clean: np.ndarray, quality: int, subsampling: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(np.round(clean * 255).astype(np.uint8))
    image.save(buffer, "JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling])
    return buffer.getvalue()


def restore_with_file_model(
    data: bytes,
    clean: np.ndarray,
    iters: int | None,
    threads: int | None = None,
    weighting: str = "uniform",
    preset: str | None = None,
    dequantize: str = "center",
) -> tuple[dict, dict]:
    """One fit to the file's coefficients, scored as fitted and after ``dip jpeg``'s finish
    (``JpegModel.finish``: the blend with the file's decodes and the projection into the
    quantization box): the two differ only there."""
    import torch

    from dip_cli.core import restore_array
    from dip_cli.jpeg_file import read_jpeg
    from dip_cli.operators import JpegModel

    jpeg = read_jpeg(data)
    settings = resolve_settings("jpeg", preset, iters=iters)
    start = time.perf_counter()
    model = JpegModel(jpeg, project=False, weighting=weighting, dequantize=dequantize)
    fitted, record = restore_array(
        decode_image(data).pixels, model, settings, RunOptions(threads=threads), reference=clean
    )
    seconds = time.perf_counter() - start
    curve = [row["psnr_reference"] for row in record.history]  # the smoothed output vs the clean crop
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(fitted.transpose(2, 0, 1)))[None]
        decoded = torch.from_numpy(np.ascontiguousarray(decode_image(data).pixels.transpose(2, 0, 1)))[None]
        projected = JpegModel(jpeg).finish(x, decoded)[0].permute(1, 2, 0).numpy()
    if curve:
        best = int(np.argmax(curve))
        trend = {"best_seen": curve[best], "best_at": best + 1, "at_half": curve[len(curve) // 2 - 1]}
    else:  # several fits averaged: the record keeps no single curve
        trend = {"best_seen": float("nan"), "best_at": 0, "at_half": float("nan")}
    return {**score(fitted, clean, seconds), **trend}, score(projected, clean, seconds)


def restore_with_pixel_loss(
    data: bytes, clean: np.ndarray, iters: int | None, threads: int | None = None
) -> dict:
    """What dip jpeg did before (and does for a PNG of a decoded JPEG): fit the decoded pixels."""
    settings = resolve_settings("jpeg", iters=iters)
    start = time.perf_counter()
    restored, _ = restore_picture("jpeg", decode_image(data), settings, RunOptions(threads=threads))
    return score(restored.pixels, clean, time.perf_counter() - start)


def score(pixels: np.ndarray, clean: np.ndarray, seconds: float) -> dict:
    saved = as_saved(pixels)
    return {"psnr": psnr(saved, clean), "ssim": ssim(saved, clean), "seconds": seconds}


def measure(
    name: str,
    quality: int,
    mode: str,
    size: int,
    iters: int | None,
    preset: str | None,
    with_pixel_loss: bool,
    dequantize: str,
    threads: int | None,
) -> dict:
    """One crop at one quality and chroma mode: the JPEG, the file model and (unless skipped)
    the pixel loss."""
    import warnings

    warnings.simplefilter("ignore")  # the pixel-loss run says it falls back; we know
    clean = crop(SOURCES[name](), size)
    data = encode(clean, quality, mode)
    decoded = decode_image(data).pixels
    row = {
        "image": name,
        "q": quality,
        "mode": mode,
        "jpeg": psnr(decoded, clean),
        "jpeg_ssim": ssim(decoded, clean),
    }
    row["fitted"], row["model"] = restore_with_file_model(
        data, clean, iters, threads, preset=preset, dequantize=dequantize
    )
    if with_pixel_loss:  # always the default preset: what dip jpeg did before the file model
        row["pixels"] = restore_with_pixel_loss(data, clean, iters, threads)
    else:
        row["pixels"] = {"psnr": float("nan"), "ssim": float("nan"), "seconds": float("nan")}
    model, pixels = row["model"], row["pixels"]
    print(
        f"{name} q{quality} {mode}: JPEG {row['jpeg']:.2f}, file model {model['psnr']:.2f} "
        f"(before the projection {row['fitted']['psnr']:.2f}) ({model['seconds']:.0f}s), "
        f"pixel loss {pixels['psnr']:.2f} ({pixels['seconds']:.0f}s)",
        file=sys.stderr,
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 tiny crops, 20 iterations")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", nargs="*", default=list(SOURCES))
    parser.add_argument("--qualities", nargs="*", type=int, default=[10, 20])
    parser.add_argument("--subsampling", nargs="*", default=list(SUBSAMPLING))
    parser.add_argument(
        "--preset", help="the file model's preset (e.g. jpeg-avg3); the pixel loss keeps the default"
    )
    parser.add_argument(
        "--no-pixel-loss", action="store_true", help="skip the pixel-loss fits (the column shows nan)"
    )
    parser.add_argument(
        "--dequantize",
        choices=("center", "laplacian"),
        default="center",
        help="the file model's targets: bin centres k*q, or moved toward zero (a Laplacian per frequency)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="crops measured at once, one thread each (1: all threads, one at a time)",
    )
    args = parser.parse_args()
    size, iters = (48, 20) if args.quick else (args.size, None)
    images = args.images[:2] if args.quick else args.images
    cases = [(n, q, m) for n in images for q in args.qualities for m in args.subsampling]
    extra = (size, iters, args.preset, not args.no_pixel_loss, args.dequantize)
    rows = measure_all(measure, cases, extra, args.jobs)
    print_tables(rows, size, args.preset or "jpeg")
    print("\n| image | quality | chroma | no box: at half the budget | at the end | best seen (iteration) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        f = r["fitted"]
        print(
            f"| {r['image']} | {r['q']} | {r['mode']} | {f['at_half']:.2f} | {f['psnr']:.2f} "
            f"| {f['best_seen']:.2f} ({f['best_at']}) |"
        )


def print_tables(rows: list[dict], size: int, preset: str = "jpeg") -> None:
    print(f"\n### dip jpeg (preset {preset}) on {size} px crops: PSNR dB / SSIM (gain over the JPEG)\n")
    print(
        "| image | quality | chroma | JPEG | **file model + box (default)** | file model, no box "
        "| pixel loss (before) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m, f, p = r["model"], r["fitted"], r["pixels"]
        print(
            f"| {r['image']} | {r['q']} | {r['mode']} | {r['jpeg']:.2f} / {r['jpeg_ssim']:.3f} "
            f"| **{m['psnr']:.2f}** / {m['ssim']:.3f} ({m['psnr'] - r['jpeg']:+.2f}) "
            f"| {f['psnr']:.2f} ({f['psnr'] - r['jpeg']:+.2f}) "
            f"| {p['psnr']:.2f} / {p['ssim']:.3f} ({p['psnr'] - r['jpeg']:+.2f}) "
            f"| {m['seconds']:.0f} / {p['seconds']:.0f} |"
        )
    print(
        "\n| quality | chroma | crops | mean gain, model + box | mean gain, model | mean gain, pixels "
        "| crops above the JPEG | crops above the pixel loss |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for q in sorted({r["q"] for r in rows}):
        for mode in sorted({r["mode"] for r in rows}):
            group = [r for r in rows if r["q"] == q and r["mode"] == mode]
            if not group:
                continue
            gains = {
                k: np.mean([r[k]["psnr"] - r["jpeg"] for r in group]) for k in ("model", "fitted", "pixels")
            }
            above = sum(r["model"]["psnr"] > r["jpeg"] for r in group)
            better = sum(r["model"]["psnr"] > r["pixels"]["psnr"] for r in group)
            print(
                f"| {q} | {mode} | {len(group)} | {gains['model']:+.2f} dB | {gains['fitted']:+.2f} dB "
                f"| {gains['pixels']:+.2f} dB | {above}/{len(group)} | {better}/{len(group)} |"
            )


if __name__ == "__main__":
    main()
