"""Denoising and JPEG quality of dip's defaults against classical baselines, on real crops.

    python -m benchmarks.denoise_quality            # ~35 min on 2 CPU cores
    python -m benchmarks.denoise_quality --denoise-only
    python -m benchmarks.denoise_quality --quick    # a smoke test of the script (~1 min)

Images: 128 px center crops of F16 (the paper's, from ../shared/data/dip) and two of
scikit-image's bundled photos. Noise: Gaussian sigma = 25 (seeded). JPEG: quality 10.
Methods:
- dip defaults (`dip denoise` / `dip jpeg` with no options),
- the `*-paper` preset given the same wall-clock budget as the default took,
- `denoise-avg3`: the default fitted three times from independent seeds, outputs averaged,
- scikit-image non-local means and TV (Chambolle), each the best of a small parameter grid
  scored against the clean image, which favours the baselines (a user cannot do that),
- CBM3D if the optional `bm3d` package is installed.
Also the early-stop gap: PSNR of the auto-selected output vs the best PSNR of the smoothed
output seen during the run, and the iterations saved against the fixed budget.
Prints markdown tables; figures depend on the machine (quote ratios, not seconds).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from benchmarks.common import DATA, cbm3d, center_crop, iterations_for, nlm, run_dip, tv
from dip_cli.io import decode_image, load_image
from dip_cli.metrics import psnr, ssim
from dip_cli.operators import encode_jpeg, simulate_noise

SIGMA = 25


def load_crops(size: int) -> dict[str, np.ndarray]:
    from skimage import data

    crops = {}
    f16 = DATA / "denoising" / "F16_GT.png"
    if f16.exists():
        crops["F16"] = center_crop(load_image(f16).pixels, size)
    else:
        print(f"note: {f16} not found; running on scikit-image images only", file=sys.stderr)
    for name in ("astronaut", "coffee"):
        crops[name] = center_crop(getattr(data, name)().astype(np.float32) / 255.0, size)
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and budgets: checks the script runs")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--denoise-only", action="store_true", help="skip the JPEG rows")
    args = parser.parse_args()
    size = 48 if args.quick else args.size
    iters = {"iters": 60} if args.quick else {}
    crops = load_crops(size)
    rows, gaps, jpeg_rows = [], [], []
    for name, clean in crops.items():
        noisy = simulate_noise(clean, SIGMA, seed=0)
        default = run_dip("denoise", noisy, clean, **iters)
        paper_iters = (
            30 if args.quick else iterations_for(default["seconds"], "denoise", noisy, "denoise-paper")
        )
        paper = run_dip(
            "denoise",
            noisy,
            clean,
            preset="denoise-paper",
            iters=paper_iters,
        )
        averaged = run_dip("denoise", noisy, clean, preset="denoise-avg3", **iters)
        start = time.perf_counter()
        nlm_out, nlm_label = nlm(noisy, clean, SIGMA)
        nlm_seconds = (time.perf_counter() - start) / 4
        start = time.perf_counter()
        tv_out, tv_label = tv(noisy, clean)
        tv_seconds = (time.perf_counter() - start) / 5
        row = {
            "image": name,
            "noisy": (psnr(noisy, clean), ssim(noisy, clean), 0.0, ""),
            "dip default": (
                default["psnr"],
                default["ssim"],
                default["seconds"],
                f"{default['iterations']} it",
            ),
            "dip denoise-paper, same time": (
                paper["psnr"],
                paper["ssim"],
                paper["seconds"],
                f"{paper_iters} it",
            ),
            "dip denoise-avg3 (3 fits)": (
                averaged["psnr"],
                averaged["ssim"],
                averaged["seconds"],
                f"{averaged['iterations']} it",
            ),
            "NLM": (psnr(nlm_out, clean), ssim(nlm_out, clean), nlm_seconds, nlm_label),
            "TV": (psnr(tv_out, clean), ssim(tv_out, clean), tv_seconds, tv_label),
        }
        start = time.perf_counter()
        bm = cbm3d(noisy, SIGMA)
        if bm is not None:
            row["CBM3D"] = (psnr(bm, clean), ssim(bm, clean), time.perf_counter() - start, "sigma known")
        rows.append(row)
        budget = 60 if args.quick else 3000
        gaps.append((name, default, budget))
        if args.denoise_only:
            continue

        data = encode_jpeg(clean, 10)
        jpeg = decode_image(data).pixels
        restored = run_dip("jpeg", jpeg, clean, source=data, **iters)
        jpeg_rows.append((name, psnr(jpeg, clean), ssim(jpeg, clean), restored))
        print(f"done {name}", file=sys.stderr, flush=True)

    print(f"\n### Denoising, sigma = {SIGMA}, {size} px crops: PSNR dB / SSIM / seconds\n")
    methods = list(rows[0])[1:]
    print("| image | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for row in rows:
        cells = [f"{p:.2f} / {s:.3f} / {t:.0f}s" for p, s, t, _ in (row[m] for m in methods)]
        print(f"| {row['image']} | " + " | ".join(cells) + " |")
    means = [np.mean([row[m][0] for row in rows]) for m in methods]
    print("| **mean PSNR** | " + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    print(
        "\nSettings chosen: "
        + "; ".join(
            f"{row['image']}: paper {row['dip denoise-paper, same time'][3]}, "
            f"NLM {row['NLM'][3]}, TV {row['TV'][3]}"
            for row in rows
        )
    )
    nlm_margin = means[methods.index("dip default")] - means[methods.index("NLM")]
    print(f"\ndip default - NLM (mean): {nlm_margin:+.2f} dB (target >= +0.5)")
    if "CBM3D" in methods:
        for method in ("dip default", "dip denoise-avg3 (3 fits)"):
            gap = means[methods.index("CBM3D")] - means[methods.index(method)]
            print(f"CBM3D - {method} (mean): {gap:+.2f} dB (target <= 0.5)")

    print("\n### Early stopping (ES-WMV) on the default denoiser\n")
    print("| image | kept (iteration) | best seen (iteration) | gap dB | stopped at | fixed budget | saved |")
    print("|---|---|---|---|---|---|---|")
    for name, d, budget in gaps:
        print(
            f"| {name} | {d['psnr']:.2f} ({d['selected']}) | {d['best_seen']:.2f} ({d['best_at']}) | "
            f"{d['best_seen'] - d['psnr']:.2f} | {d['iterations']} ({d['stop']}) | {budget} | "
            f"{1 - d['iterations'] / budget:.0%} |"
        )

    if not jpeg_rows:
        return
    print("\n### JPEG quality 10: PSNR dB / SSIM\n")
    print("| image | JPEG input | dip jpeg (default) | gain | seconds |")
    print("|---|---|---|---|---|")
    for name, p, s, r in jpeg_rows:
        print(
            f"| {name} | {p:.2f} / {s:.3f} | {r['psnr']:.2f} / {r['ssim']:.3f} | {r['psnr'] - p:+.2f} | "
            f"{r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
