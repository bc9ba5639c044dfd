"""dip against the classical tool a user would otherwise pick, on crops of real photos that dip's
other benchmarks and tests do not use: one table per task, PSNR / SSIM / wall time per cell.

- jpeg: the JPEG itself; jpegqs -q 3 and -q 6 (Debian package ``jpegqs``) and jpeg2png (C,
  GPLv3: build github:victorvde/jpeg2png with ``make`` beside the project and put it on PATH)
  where found on PATH, said when not; ``dip jpeg`` (the file's own coefficients). Qualities 10,
  20, 30, 50, 75; chroma 4:2:0 and 4:4:4 (Pillow's libjpeg).
- denoise: CBM3D (the ``bm3d`` package, non-commercial licence: a benchmark anchor only) with
  the true sigma and with sigma estimated from the image, and non-local means (scikit-image,
  h = 0.8 sigma estimated); sigma = 15, 25, 50, and Poisson-Gaussian noise (peak 30, sigma 5/255)
  against a variance-stabilising transform (generalised Anscombe) + BM3D + its exact unbiased
  inverse (closed form, Makitalo & Foi 2011).
- sr: x2 and x4 from the paper's Lanczos-2 downsampler; bicubic and Lanczos (Pillow).
- inpaint: scratches over 128 px; biharmonic (scikit-image).

The anchors are measured here and never imported by ``dip_cli``. Scores are on the 8-bit result
a user saves.

    python -m benchmarks.versus --tasks jpeg --jobs 2
    python -m benchmarks.versus --quick                       # every task on 2 crops, 20 iterations
    python -m benchmarks.versus --tasks jpeg --qualities 10 30 50 --subsampling 4:2:0 --crops pagoda trees
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.common import DATA, as_saved, bicubic, measure_all, run_dip
from dip_cli.io import decode_image
from dip_cli.metrics import psnr, ssim
from dip_cli.operators import biharmonic_fill

# (source, top, left) of each 128 px crop; what it holds: edges, texture or smooth shading.
CROPS = {
    "pagoda": ("china", 150, 100),  # edges and fine ornament
    "trees": ("china", 290, 500),  # foliage: texture
    "petals": ("flower", 110, 210),  # smooth petals with sharp rims
    "bokeh": ("flower", 20, 20),  # out-of-focus background: smooth
    "tissue": ("ihc", 200, 250),  # stained cells: texture
    "tower": ("rocket", 150, 0),  # a lattice against the sky: edges
    "jugs": ("cave", 200, 380),  # glaze with a painted pattern: smooth and edges
    "hair": ("kate", 100, 140),  # hair and skin
}
QUALITIES = (10, 20, 30, 50, 75)
SUBSAMPLING = {"4:2:0": 2, "4:4:4": 0}  # Pillow's subsampling codes
SIGMAS = ("15", "25", "50", "poisson")
SCALES = ("2", "4")


def source(name: str) -> np.ndarray:
    from skimage import data
    from sklearn.datasets import load_sample_image

    loaders = {
        "china": lambda: load_sample_image("china.jpg"),
        "flower": lambda: load_sample_image("flower.jpg"),
        "ihc": data.immunohistochemistry,
        "rocket": data.rocket,
        "cave": lambda: np.asarray(
            Image.open(DATA / "flash_no_flash" / "cave01_00_flash.jpg").convert("RGB")
        ),
        "kate": lambda: np.asarray(Image.open(DATA / "restoration" / "kate.png").convert("RGB")),
    }
    return np.asarray(loaders[name]())[..., :3].astype(np.float32) / 255.0


def crop(name: str, size: int) -> np.ndarray:
    image, top, left = CROPS[name]
    return np.ascontiguousarray(source(image)[top : top + size, left : left + size])


def scored(pixels: np.ndarray, clean: np.ndarray, seconds: float) -> dict:
    saved = as_saved(pixels)
    return {"psnr": psnr(saved, clean), "ssim": ssim(saved, clean), "seconds": seconds}


def timed(method, *args) -> tuple[np.ndarray | None, float]:
    start = time.perf_counter()
    out = method(*args)
    return out, time.perf_counter() - start


# --- JPEG ---------------------------------------------------------------------------------------


def encode(clean: np.ndarray, quality: int, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(clean * 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=quality, subsampling=SUBSAMPLING[mode]
    )
    return buffer.getvalue()


def external(tool: str, data: bytes, *options: str) -> np.ndarray | None:
    """Run a JPEG decoder on PATH (jpegqs, jpeg2png) on ``data``; None when it is not installed."""
    if shutil.which(tool) is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        src, out = Path(folder) / "in.jpg", Path(folder) / ("out.jpg" if tool == "jpegqs" else "out.png")
        src.write_bytes(data)
        if tool == "jpegqs":
            command = [tool, *options, "--info", "0", str(src), str(out)]
        else:
            command = [tool, *options, str(src), "-o", str(out), "--force"]
        subprocess.run(command, check=True, capture_output=True)
        return np.asarray(Image.open(out).convert("RGB"), dtype=np.float32) / 255.0


def jpeg_case(
    name: str, setting: str, size: int, iters: int | None, preset: str | None, keep, threads
) -> dict:
    quality, mode = int(setting.split()[0][1:]), setting.split()[1]
    clean = crop(name, size)
    data = encode(clean, quality, mode)
    row = {
        "task": "jpeg",
        "crop": name,
        "setting": setting,
        "input": scored(decode_image(data).pixels, clean, 0),
    }
    for label, tool, options in (("jpegqs -q3", "jpegqs", ("-q", "3")), ("jpegqs -q6", "jpegqs", ("-q", "6")),
                                 ("jpeg2png", "jpeg2png", ())):  # fmt: skip
        out, seconds = timed(external, tool, data, *options)
        row[label] = None if out is None else scored(out, clean, seconds)
    dip = run_dip(
        "jpeg", decode_image(data).pixels, clean, source=data, preset=preset, iters=iters, threads=threads
    )
    row["dip"] = {k: dip[k] for k in ("psnr", "ssim", "seconds")}
    if keep is not None:  # the file, its original and dip's output, to study blends without refitting
        stem = Path(keep) / f"{name}_q{quality}_{mode.replace(':', '')}"
        stem.with_suffix(".jpg").write_bytes(data)
        np.save(f"{stem}_clean.npy", clean)
        np.save(f"{stem}_dip.npy", dip["pixels"])
    return row


# --- denoising ----------------------------------------------------------------------------------

PEAK, READ_SIGMA = 30.0, 5 / 255  # Poisson-Gaussian: photons at white, and the read noise


def noisy_of(clean: np.ndarray, setting: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if setting == "poisson":
        counts = rng.poisson(clean * PEAK) / PEAK
        return np.clip(counts + rng.normal(0, READ_SIGMA, clean.shape), 0, 1).astype(np.float32)
    return np.clip(clean + rng.normal(0, int(setting) / 255, clean.shape), 0, 1).astype(np.float32)


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray | None:
    try:
        import bm3d
    except ImportError:
        return None
    return np.clip(bm3d.bm3d_rgb(noisy, sigma), 0, 1)


def estimated_sigma(noisy: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(noisy, channel_axis=-1)))


def nlm(noisy: np.ndarray) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    s = estimated_sigma(noisy)
    return denoise_nl_means(
        noisy, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
    )


def vst_bm3d(noisy: np.ndarray) -> np.ndarray | None:
    """Generalised Anscombe (Poisson gain 1/PEAK plus Gaussian read noise), BM3D with sigma 1 on
    the stabilised scale, then the closed-form approximation of the exact unbiased inverse."""
    try:
        import bm3d
    except ImportError:
        return None
    counts, read = noisy * PEAK, READ_SIGMA * PEAK
    stabilised = 2 * np.sqrt(np.maximum(counts + 3 / 8 + read**2, 0))
    scale = stabilised.max() + 1
    denoised = bm3d.bm3d_rgb(stabilised / scale, 1 / scale) * scale
    d = np.maximum(denoised, 1e-6)
    inverse = (
        0.25 * d**2 + 0.25 * np.sqrt(1.5) / d - 11 / 8 / d**2 + 5 / 8 * np.sqrt(1.5) / d**3 - 1 / 8 - read**2
    )
    return np.clip(inverse / PEAK, 0, 1)


def denoise_case(
    name: str, setting: str, size: int, iters: int | None, preset: str | None, keep, threads
) -> dict:
    clean = crop(name, size)
    noisy = noisy_of(clean, setting)
    row = {"task": "denoise", "crop": name, "setting": f"σ={setting}", "input": scored(noisy, clean, 0)}
    if setting == "poisson":
        out, seconds = timed(vst_bm3d, noisy)
        row["VST+BM3D"] = None if out is None else scored(out, clean, seconds)
    else:
        out, seconds = timed(cbm3d, noisy, int(setting) / 255)
        row["CBM3D true σ"] = None if out is None else scored(out, clean, seconds)
    out, seconds = timed(lambda x: cbm3d(x, estimated_sigma(x)), noisy)
    row["CBM3D est. σ"] = None if out is None else scored(out, clean, seconds)
    out, seconds = timed(nlm, noisy)
    row["NLM"] = scored(out, clean, seconds)
    dip = run_dip("denoise", noisy, clean, preset=preset, iters=iters, threads=threads)
    row["dip"] = {k: dip[k] for k in ("psnr", "ssim", "seconds")}
    return row


# --- super-resolution and inpainting -------------------------------------------------------------


def lanczos(low: np.ndarray, scale: int) -> np.ndarray:
    size = (low.shape[1] * scale, low.shape[0] * scale)
    channels = [
        np.asarray(Image.fromarray(low[..., c]).resize(size, Image.Resampling.LANCZOS)) for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0, 1).astype(np.float32)


def sr_case(name: str, setting: str, size: int, iters: int | None, preset: str | None, keep, threads) -> dict:
    from dip_cli.operators import simulate_downscale

    scale = int(setting)
    clean = crop(name, size)
    low = simulate_downscale(clean, scale)
    row = {"task": "sr", "crop": name, "setting": f"x{scale}"}
    for label, method in (("bicubic", bicubic), ("Lanczos", lanczos)):
        out, seconds = timed(method, low, scale)
        row[label] = scored(out, clean, seconds)
    row["input"] = row["bicubic"]  # what a user has without dip
    dip = run_dip("sr", low, clean, scale=scale, preset=preset, iters=iters, threads=threads)
    row["dip"] = {k: dip[k] for k in ("psnr", "ssim", "seconds")}
    return row


def scratches(size: int) -> np.ndarray:
    """A fixed mask of thin strokes (True = known): scratches across the crop."""
    mask = Image.new("L", (size, size), 255)
    draw, rng = ImageDraw.Draw(mask), np.random.default_rng(7)
    for _ in range(size // 16):
        points = [tuple(map(int, rng.integers(0, size, 2))) for _ in range(3)]
        draw.line(points, fill=0, width=int(rng.integers(2, 5)))
    return np.asarray(mask) > 127


def inpaint_case(
    name: str, setting: str, size: int, iters: int | None, preset: str | None, keep, threads
) -> dict:
    clean = crop(name, size)
    known = scratches(size)
    corrupted = np.where(known[..., None], clean, 0).astype(np.float32)
    row = {"task": "inpaint", "crop": name, "setting": f"{100 * (1 - known.mean()):.0f}% holes"}
    row["input"] = scored(corrupted, clean, 0)
    out, seconds = timed(biharmonic_fill, corrupted, known)
    row["biharmonic"] = scored(out, clean, seconds)
    dip = run_dip("inpaint", corrupted, clean, known, preset=preset, iters=iters, threads=threads)
    row["dip"] = {k: dip[k] for k in ("psnr", "ssim", "seconds")}
    return row


CASES = {"jpeg": jpeg_case, "denoise": denoise_case, "sr": sr_case, "inpaint": inpaint_case}


def measure(task: str, name: str, setting: str, size: int, iters, preset, keep, threads) -> dict:
    row = CASES[task](name, setting, size, iters, preset, keep, threads)
    line = ", ".join(f"{k} {v['psnr']:.2f}" for k, v in row.items() if isinstance(v, dict))
    print(
        f"{task} {name} {row['setting']}: {line} (dip {row['dip']['seconds']:.0f}s)",
        file=sys.stderr,
        flush=True,
    )
    return row


# --- tables --------------------------------------------------------------------------------------


def methods_of(rows: list[dict]) -> list[str]:
    seen = dict.fromkeys(
        k for r in rows for k, v in r.items() if k not in ("input", "dip") and isinstance(v, dict)
    )
    missing = dict.fromkeys(k for r in rows for k, v in r.items() if v is None)
    return [*seen, *(m for m in missing if m not in seen), "dip"]


def cell(value: dict | None, input_psnr: float) -> str:
    if value is None:
        return "not on PATH"
    gain = value["psnr"] - input_psnr
    return f"{value['psnr']:.2f} ({gain:+.2f}) / {value['ssim']:.3f}; {value['seconds']:.1f}s"


def print_task(task: str, rows: list[dict]) -> None:
    rows = [r for r in rows if r["task"] == task]
    if not rows:
        return
    methods = methods_of(rows)
    print(f"\n### {task}: PSNR dB (gain over the input) / SSIM; seconds\n")
    print("| crop | setting | input | " + " | ".join(methods) + " |")
    print("|---|---|---|" + "---|" * len(methods))
    for r in rows:
        cells = []
        for m in methods:
            cells.append(cell(r.get(m), r["input"]["psnr"]))
        print(f"| {r['crop']} | {r['setting']} | {r['input']['psnr']:.2f} | " + " | ".join(cells) + " |")
    print(
        f"\n| {task} setting | crops | "
        + " | ".join(f"mean gain {m}" for m in methods)
        + " | dip below input |"
    )
    print("|---|---|" + "---|" * (len(methods) + 1))
    for setting in dict.fromkeys(r["setting"] for r in rows):
        group = [r for r in rows if r["setting"] == setting]
        gains = []
        for m in methods:
            values = [r[m]["psnr"] - r["input"]["psnr"] for r in group if r.get(m) is not None]
            gains.append(f"{np.mean(values):+.2f}" if values else "—")
        below = sum(r["dip"]["psnr"] < r["input"]["psnr"] for r in group)
        print(f"| {setting} | {len(group)} | " + " | ".join(gains) + f" | {below}/{len(group)} |")


def settings_for(task: str, args) -> list[str]:
    if task == "jpeg":
        return [f"q{q} {m}" for q in args.qualities for m in args.subsampling]
    return {"denoise": list(args.sigmas), "sr": list(args.scales), "inpaint": ["scratches"]}[task]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--crops", nargs="*", default=list(CROPS), choices=list(CROPS))
    parser.add_argument("--qualities", nargs="*", type=int, default=list(QUALITIES))
    parser.add_argument("--subsampling", nargs="*", default=list(SUBSAMPLING), choices=list(SUBSAMPLING))
    parser.add_argument("--sigmas", nargs="*", default=list(SIGMAS), choices=list(SIGMAS))
    parser.add_argument("--scales", nargs="*", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--preset", help="dip's preset for every task (default: each task's own)")
    parser.add_argument("--iters", type=int, help="dip's iteration budget (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=1, help="cases at once, one thread each")
    parser.add_argument("--quick", action="store_true", help="2 crops, one setting per task, 20 iterations")
    parser.add_argument("--keep", type=Path, help="jpeg: save each file, its original and dip's output here")
    args = parser.parse_args()
    crops, iters, size = args.crops, args.iters, args.size
    if args.quick:
        crops, iters, size = crops[:2], 20, 64
        args.qualities, args.subsampling, args.sigmas, args.scales = [30], ["4:2:0"], ["25"], ["4"]
    for tool in ("jpegqs", "jpeg2png"):
        if "jpeg" in args.tasks and shutil.which(tool) is None:
            print(f"note: {tool} is not on PATH: its column says so", file=sys.stderr)
    cases = [(t, c, s) for t in args.tasks for s in settings_for(t, args) for c in crops]
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    rows = measure_all(measure, cases, (size, iters, args.preset, args.keep), args.jobs)
    preset = args.preset or "each task's default"
    print(f"\n{size} px crops; dip preset: {preset}; iterations: {iters or 'the preset budget'}")
    for task in args.tasks:
        print_task(task, rows)


if __name__ == "__main__":
    main()
