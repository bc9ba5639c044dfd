"""Helpers shared by the benchmarks: crops, running dip through its API, classical baselines."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from dip_cli.io import Picture, load_image, save_image
from dip_cli.metrics import psnr, ssim
from dip_cli.restore import RestoreRequest, restore

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dip"


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    top = (pixels.shape[0] - size) // 2
    left = (pixels.shape[1] - size) // 2
    return pixels[top : top + size, left : left + size]


def save(path: Path, pixels: np.ndarray) -> Path:
    save_image(path, Picture(pixels.astype(np.float32)))
    return path


def run_dip(
    task: str,
    observed: np.ndarray,
    clean: np.ndarray,
    workdir: Path,
    tag: str,
    known: np.ndarray | None = None,
    **options,
) -> dict:
    """Restore ``observed`` with dip; score the saved file against ``clean``."""
    source = save(workdir / f"{tag}.png", observed)
    reference = save(workdir / f"{tag}.clean.png", clean)
    if known is not None:
        options["mask"] = str(save(workdir / f"{tag}.mask.png", known.astype(np.float32)[..., None]))
    start = time.perf_counter()
    result = restore(
        RestoreRequest(
            task=task,
            input=source,
            output=workdir / f"{tag}.out.png",
            reference=reference,
            overwrite=True,
            **options,
        )
    )
    seconds = time.perf_counter() - start
    with open(result.run_dir / "metrics.csv", newline="") as f:
        curve = [float(row["psnr_reference"]) for row in csv.DictReader(f)]
    restored = load_image(result.output).pixels
    return {
        "psnr": psnr(restored, clean),
        "ssim": ssim(restored, clean),
        "seconds": seconds,
        "iterations": result.iterations,
        "selected": result.selected_iteration,
        "best_seen": max(curve),
        "best_at": int(np.argmax(curve)) + 1,
        "stop": result.stop_reason,
    }


def iterations_for(
    seconds: float, task: str, observed: np.ndarray, workdir: Path, preset: str, **options
) -> int:
    """How many iterations of ``preset`` fit in ``seconds`` (timed on 25 steps after warm-up)."""
    source = save(workdir / "probe.png", observed)
    if "known" in options:
        options["mask"] = str(
            save(workdir / "probe.mask.png", options.pop("known").astype(np.float32)[..., None])
        )

    def timed(iters: int) -> float:
        start = time.perf_counter()
        restore(
            RestoreRequest(
                task=task,
                input=source,
                output=workdir / "probe.out.png",
                preset=preset,
                iters=iters,
                overwrite=True,
                **options,
            )
        )
        return time.perf_counter() - start

    short, long = timed(5), timed(30)
    per_iteration = max((long - short) / 25, 1e-3)
    return max(1, int(seconds / per_iteration))


def best_of(candidates: dict[str, np.ndarray], clean: np.ndarray) -> tuple[np.ndarray, str]:
    """The candidate closest to the clean image: favours the baseline (a user cannot do this)."""
    label = max(candidates, key=lambda k: psnr(candidates[k], clean))
    return np.clip(candidates[label], 0, 1).astype(np.float32), label


def nlm(noisy: np.ndarray, clean: np.ndarray, sigma: float) -> tuple[np.ndarray, str]:
    from skimage.restoration import denoise_nl_means

    s = sigma / 255.0  # the true sigma (estimate_sigma would need PyWavelets)
    return best_of(
        {
            f"h={f}σ": denoise_nl_means(
                noisy, h=f * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
            )
            for f in (0.4, 0.5, 0.6, 0.8, 1.0, 1.2)
        },
        clean,
    )


def tv(noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, str]:
    from skimage.restoration import denoise_tv_chambolle

    return best_of(
        {
            f"w={w}": denoise_tv_chambolle(noisy, weight=w, channel_axis=-1)
            for w in (0.04, 0.06, 0.08, 0.1, 0.15)
        },
        clean,
    )


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray | None:
    try:
        import bm3d
    except ImportError:
        return None
    if noisy.shape[2] == 1:
        return np.clip(bm3d.bm3d(noisy[..., 0], sigma / 255.0), 0, 1)[..., None]
    return np.clip(bm3d.bm3d_rgb(noisy, sigma / 255.0), 0, 1)


def biharmonic(corrupted: np.ndarray, known: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    return np.clip(inpaint_biharmonic(corrupted, ~known, channel_axis=-1), 0, 1).astype(np.float32)


def bicubic(low: np.ndarray, scale: int) -> np.ndarray:
    from PIL import Image

    channels = [
        np.asarray(
            Image.fromarray(low[..., c].astype(np.float32)).resize(
                (low.shape[1] * scale, low.shape[0] * scale), Image.Resampling.BICUBIC
            )
        )
        for c in range(low.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0, 1).astype(np.float32)
