"""Super-resolution quality of `dip sr` against bicubic, on real crops and low-res inputs made
with the kernels a user's image may have come from.

    python -m benchmarks.sr_quality --jobs 2                    # x4, 6 crops, 4 kernels
    python -m benchmarks.sr_quality --scales 2 4 8 --kernels lanczos2
    python -m benchmarks.sr_quality --kernels area bicubic --matched   # dip sr --kernel K
    python -m benchmarks.sr_quality --quick                     # a smoke test of the script

Crops (high resolution, --size px, 128 by default): the paper's zebra and barbara at their most
textured window (the highest mean gradient on a 16 px grid: the hard case for SR), the paper's F16
and scikit-image's astronaut, chelsea and coffee at their centre. Low-res inputs, made from each
crop by:
- ``lanczos2``: the paper's Lanczos-2 downsampler (dip's own operator, `simulate_downscale`),
- ``bicubic`` / ``lanczos3`` / ``area``: Pillow's antialiased BICUBIC / LANCZOS / BOX resize.
dip fits with its default Lanczos-2 model, or with ``--matched`` with the kernel the input was made
with (``dip sr --kernel K``). The bicubic baseline is Pillow's BICUBIC upscale. "band-limited" is
the clean crop with every frequency above the low-res Nyquist limit removed: where dip is level
with it, the crop's lost detail is texture that no interpolation can guess. "twin bound" makes
that exact (``null_space_twin``): the crop's twin, with the detail the downsampler cannot see
negated, has the same low-res image, so no method can beat the bound on both; where "bicubic + 0.5
possible" says no, no method of any kind reaches bicubic + 0.5 dB on both the crop and its twin
(the percentage: the twin's 8-bit low-res pixels equal to the crop's). PSNR / SSIM are on
RGB, over the whole image (no border shave), of the 8-bit result a user would save. Prints
markdown tables; figures depend on the machine (quote ratios, not seconds).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from benchmarks.common import DATA, as_saved, bicubic, center_crop, measure_all, run_dip
from dip_cli.io import load_image
from dip_cli.metrics import psnr, ssim
from dip_cli.operators import Downsample, simulate_downscale

KERNELS = ("lanczos2", "bicubic", "lanczos3", "area")


def most_textured(pixels: np.ndarray, size: int, step: int = 16) -> np.ndarray:
    """The ``size`` window (on a ``step`` grid) with the highest mean gradient magnitude."""
    gray = pixels.mean(axis=2)
    grad = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(grad, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    best, where = -1.0, (0, 0)
    for top in range(0, grad.shape[0] - size + 1, step):
        for left in range(0, grad.shape[1] - size + 1, step):
            b, r = top + size, left + size
            total = integral[b, r] - integral[top, r] - integral[b, left] + integral[top, left]
            if total > best:
                best, where = total, (top, left)
    top, left = where
    return pixels[top : top + size, left : left + size]


def _shared(path: str):
    return lambda: load_image(DATA / path).pixels


def _skimage(name: str):
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, name)().astype(np.float32) / 255.0

    return load


# name -> (loader, crop rule)
SOURCES = {
    "zebra": (_shared("sr/zebra_GT.png"), most_textured),
    "barbara": (_shared("restoration/barbara.png"), most_textured),
    "F16": (_shared("denoising/F16_GT.png"), center_crop),
    "astronaut": (_skimage("astronaut"), center_crop),
    "chelsea": (_skimage("chelsea"), center_crop),
    "coffee": (_skimage("coffee"), center_crop),
}


def downscale(clean: np.ndarray, factor: int, kernel: str) -> np.ndarray:
    if kernel == "lanczos2":
        return simulate_downscale(clean, factor)
    from PIL import Image

    resampling = Image.Resampling
    method = {"bicubic": resampling.BICUBIC, "lanczos3": resampling.LANCZOS, "area": resampling.BOX}[kernel]
    h, w = clean.shape[0] // factor, clean.shape[1] // factor
    channels = [
        np.asarray(Image.fromarray(clean[..., c].astype(np.float32)).resize((w, h), method))
        for c in range(clean.shape[2])
    ]
    # a user's low-res file holds 8-bit values
    return as_saved(np.stack(channels, axis=2)).astype(np.float32)


def band_limited(clean: np.ndarray, factor: int) -> np.ndarray:
    """The clean crop with every frequency above the low-res Nyquist limit removed (an FFT box
    filter): what a perfect interpolator gives without inventing what the low-res image cannot
    hold. Methods beat it only by guessing detail above that limit right (edges can be guessed;
    fur and fine stripes cannot)."""
    freq_y, freq_x = np.fft.fftfreq(clean.shape[0]), np.fft.fftfreq(clean.shape[1])
    keep = (np.abs(freq_y)[:, None] <= 0.5 / factor) & (np.abs(freq_x)[None, :] <= 0.5 / factor)
    spectrum = np.fft.fft2(clean, axes=(0, 1)) * keep[..., None]
    return np.clip(np.real(np.fft.ifft2(spectrum, axes=(0, 1))), 0, 1).astype(np.float32)


def downscale_matrix(size: int, factor: int, kernel: str = "lanczos2") -> np.ndarray:
    """dip's downsampler along one axis of ``size`` pixels as a (size/factor, size) matrix M:
    the filter is separable, so a channel X goes to M_h X M_wᵀ (replicate padding folded in)."""
    probe = torch.zeros(size, 1, size, 1)
    probe[torch.arange(size), 0, torch.arange(size), 0] = 1.0  # probe i: a single lit row i
    with torch.no_grad():
        columns = Downsample(factor, 1, kernel)(probe.expand(size, 1, size, factor).contiguous())
    return columns[:, 0, :, 0].double().numpy().T


def null_space_twin(clean: np.ndarray, factor: int, kernel: str = "lanczos2") -> np.ndarray:
    """The crop with every detail the downsampler cannot see negated: x' = x - 2 P x, where P
    projects onto the null space of D. D(x') = D(x) exactly, so from the low-res image alone no
    method can tell x from x', and for any output y the mean of its two MSEs is at least
    ||x - x'||² / 4 per pixel (the triangle inequality): the "twin bound". Where the lost detail
    is stripes or fur, x' is the same texture shifted by half a period, as likely as x. Clipped to
    [0, 1] (a real image); the caller checks that the low-res images still agree."""
    height, width = clean.shape[:2]
    rows, cols = (downscale_matrix(n, factor, kernel) for n in (height, width))
    keep_rows, keep_cols = (np.linalg.pinv(m) @ m for m in (rows, cols))  # onto D's row space
    seen = separable(keep_rows, clean.astype(np.float64), keep_cols)
    return np.clip(2 * seen - clean, 0, 1).astype(np.float32)


def separable(rows: np.ndarray, image: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``rows @ channel @ colsᵀ`` for each channel of an (H, W, C) image."""
    return np.einsum("ij,jkc,lk->ilc", rows, image, cols)


def twin_row(clean: np.ndarray, low: np.ndarray, scale: int, kernel: str, base: np.ndarray) -> dict:
    """The twin bound, how much of the low-res image the twin shares, and whether bicubic + 0.5 dB
    on both crop and twin is possible at all (for any method: the mean of the two MSEs must stay
    above the bound; the input, and so bicubic's output ``base``, is the same for both)."""
    twin = null_space_twin(clean, scale, kernel)
    twin_low = as_saved(downscale(twin, scale, kernel))
    bound_mse = float(np.mean((clean - twin) ** 2)) / 4
    mse_x, mse_t = (float(np.mean((as_saved(base) - ref) ** 2)) for ref in (clean, twin))
    return {
        "twin_bound": float(-10 * np.log10(bound_mse)),
        "twin_low_same": float(np.mean(np.abs(twin_low - as_saved(low)) < 0.5 / 255)),
        "target_possible": bool(10 ** (-0.05) * (mse_x + mse_t) / 2 >= bound_mse),
    }


def measure(
    name: str,
    kernel: str,
    scale: int,
    size: int,
    preset: str | None,
    iters: int | None,
    matched: bool,
    threads: int | None,
) -> dict:
    load, rule = SOURCES[name]
    clean = rule(load(), size)
    low = downscale(clean, scale, kernel)
    if kernel == "lanczos2":
        low = as_saved(low).astype(np.float32)
    base = bicubic(low, scale)
    fit_kernel = kernel if matched else "lanczos2"
    dip = run_dip(
        "sr", low, clean, preset=preset, iters=iters, scale=scale, kernel=fit_kernel, threads=threads
    )
    row = {
        "image": name,
        "kernel": kernel,
        "fit_kernel": fit_kernel,
        "scale": scale,
        "bicubic": psnr(as_saved(base), clean),
        "bicubic_ssim": ssim(as_saved(base), clean),
        "band_limited": psnr(band_limited(clean, scale), clean),
        **twin_row(clean, low, scale, kernel, base),
        "dip": dip,
        "at": {k: dip["curve"][k - 1] for k in (500, 1000, 2000, 3000, 4000, 6000) if k <= len(dip["curve"])},
    }
    print(
        f"{name} x{scale} {kernel}: bicubic {row['bicubic']:.2f}, dip {dip['psnr']:.2f} "
        f"(best {dip['best_seen']:.2f} at {dip['best_at']}/{dip['iterations']}, {dip['seconds']:.0f} s); "
        + ", ".join(f"{k}: {v:.2f}" for k, v in row["at"].items()),
        file=sys.stderr,
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 tiny crops, 20 iterations")
    parser.add_argument("--size", type=int, default=128, help="high-res crop side (a multiple of 8)")
    parser.add_argument("--images", nargs="*", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--kernels", nargs="*", default=list(KERNELS), choices=list(KERNELS))
    parser.add_argument("--scales", nargs="*", type=int, default=[4])
    parser.add_argument("--preset", help="a preset name or TOML path instead of the task's default")
    parser.add_argument("--iters", type=int)
    parser.add_argument(
        "--matched", action="store_true", help="fit with the kernel the input was made with (dip sr --kernel)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="crops measured at once, one thread each")
    args = parser.parse_args()
    size, iters = (48, 20) if args.quick else (args.size, args.iters)
    images = args.images[:2] if args.quick else args.images
    cases = [(n, k, s) for s in args.scales for k in args.kernels for n in images]
    rows = measure_all(measure, cases, (size, args.preset, iters, args.matched), args.jobs)
    print_tables(rows, size)


def best_seen(dip: dict) -> str:
    """The best PSNR on the fit's curve and its iteration; several fits averaged have no curve."""
    return f"{dip['best_seen']:.2f} ({dip['best_at']})" if dip["best_at"] else "— (fits averaged)"


def print_tables(rows: list[dict], size: int) -> None:
    print(f"\n{size} px high-res crops; PSNR dB / SSIM; dip: the 8-bit result, its wall time\n")
    print(
        "| scale | kernel | image | bicubic | **dip** | Δ | band-limited | twin bound (low-res equal) "
        "| bicubic + 0.5 possible on crop and twin | best seen (iteration) | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["dip"]
        print(
            f"| ×{r['scale']} | {r['kernel']} | {r['image']} | {r['bicubic']:.2f} / {r['bicubic_ssim']:.3f} "
            f"| **{d['psnr']:.2f}** / {d['ssim']:.3f} | {d['psnr'] - r['bicubic']:+.2f} "
            f"| {r['band_limited']:.2f} | {r['twin_bound']:.2f} ({r['twin_low_same']:.1%}) "
            f"| {'yes' if r['target_possible'] else '**no**'} "
            f"| {best_seen(d)} | {d['seconds']:.0f} |"
        )
    print(
        "\n| scale | low-res made with | dip fits with | mean Δ over bicubic | worst Δ "
        "| crops ≥ bicubic + 0.5 dB |"
    )
    print("|---|---|---|---|---|---|")
    groups: dict[tuple[int, str, str], list[float]] = {}
    for r in rows:
        key = (r["scale"], r["kernel"], r["fit_kernel"])
        groups.setdefault(key, []).append(r["dip"]["psnr"] - r["bicubic"])
    for (scale, kernel, fit_kernel), deltas in groups.items():
        print(
            f"| ×{scale} | {kernel} | {fit_kernel} | {np.mean(deltas):+.2f} | {min(deltas):+.2f} "
            f"| {sum(d >= 0.5 for d in deltas)}/{len(deltas)} |"
        )


if __name__ == "__main__":
    main()
