"""Helpers shared by the benchmarks: crops, running dip through its core on arrays, classical baselines."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dip_cli.io import Picture, save_image
from dip_cli.metrics import psnr, ssim
from dip_cli.options import RunOptions
from dip_cli.tasks import resolve_settings, restore_picture

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
    known: np.ndarray | None = None,
    *,
    preset: str | None = None,
    iters: int | None = None,
    scale: int | None = None,
    kernel: str = "lanczos2",
    source: bytes | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Restore ``observed`` with dip's core (arrays, no files); score the 8-bit result a user
    would save against ``clean``. ``source``: the JPEG file ``observed`` was decoded from
    (``dip jpeg`` fits its coefficients)."""
    settings = resolve_settings(task, preset, iters=iters, scale=scale)
    start = time.perf_counter()
    restored, record = restore_picture(
        task,
        Picture(observed.astype(np.float32)),
        settings,
        known=known,
        scale=scale,
        kernel=kernel,
        source=source,
        reference=clean,
        options=RunOptions(seed=seed, threads=threads),
    )
    seconds = time.perf_counter() - start
    saved = as_saved(restored.pixels)
    curve = [row["psnr_reference"] for row in record.history]
    return {
        "psnr": psnr(saved, clean),
        "ssim": ssim(saved, clean),
        "seconds": seconds,
        "iterations": record.iterations,
        "selected": record.selected_iteration,
        # several fits (tiles, restarts) have no single curve
        "best_seen": max(curve) if curve else float("nan"),
        "best_at": int(np.argmax(curve)) + 1 if curve else 0,
        "stop": record.stop_reason,
        "curve": curve,
        "pixels": restored.pixels,
    }


def as_saved(pixels: np.ndarray) -> np.ndarray:
    """What an 8-bit PNG of ``pixels`` holds: the figures a user would measure on the file."""
    return np.round(np.clip(pixels, 0, 1) * 255) / 255


def iterations_for(seconds: float, task: str, observed: np.ndarray, preset: str, **options) -> int:
    """How many iterations of ``preset`` fit in ``seconds`` (timed on 25 steps after warm-up)."""
    known, scale, source = options.get("known"), options.get("scale"), options.get("source")

    def timed(iters: int) -> float:
        settings = resolve_settings(task, preset, iters=iters, scale=scale)
        start = time.perf_counter()
        restore_picture(
            task, Picture(observed.astype(np.float32)), settings, known=known, scale=scale, source=source
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

    s = sigma / 255.0  # the true sigma: the baselines are given it
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


def measure_all(measure, cases: list[tuple], extra: tuple, jobs: int) -> list:
    """``measure(*case, *extra, threads)`` for every case: one at a time with dip's default
    threads, or in ``jobs`` processes at once with one thread each (never more threads than cores)."""
    if jobs <= 1:
        return [measure(*case, *extra, None) for case in cases]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    columns = [list(column) for column in zip(*cases, strict=True)] + [[x] * len(cases) for x in (*extra, 1)]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(measure, *columns))


def tree_pss(pid: int) -> list[int]:
    """Proportional set size in bytes of a process and each of its descendants (Linux /proc)."""
    sizes = []
    for each in [pid, *descendants(pid)]:
        try:
            rollup = (Path("/proc") / str(each) / "smaps_rollup").read_text()
        except OSError:
            continue  # it ended meanwhile
        sizes += [int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")]
    return sizes


def descendants(pid: int) -> list[int]:
    """The process ids of a process's children, their children, and so on (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        tasks = Path("/proc") / str(todo.pop()) / "task"
        try:
            children = [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # it ended meanwhile
        found += children
        todo += children
    return found
