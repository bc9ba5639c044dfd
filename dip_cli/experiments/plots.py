"""The experiments' PNG figures (matplotlib, Agg backend: no display needed).

Imported only when an experiment writes its plot, so ``dip --help`` never loads matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

TARGET_COLOURS = {"image": "tab:blue", "noisy": "tab:orange", "shuffled": "tab:green", "noise": "tab:red"}
DPI = 80  # small PNGs: they are committed for the README


def fit_curves(path: Path, rows: Sequence[dict], noisy_input_db: float) -> Path:
    """FVU against iteration for each target (DIP solid, pixel MLP dashed); PSNR on the noisy fit."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for network, style in (("dip", "-"), ("pixel-mlp", "--")):
        for target, colour in TARGET_COLOURS.items():
            its, fvu = _series(rows, "fvu", network=network, target=target)
            if its:
                left.plot(its, fvu, style, color=colour, label=f"{network}: {target}", lw=1.4)
    left.set(xscale="log", xlabel="iteration", ylabel="FVU = MSE / var(target)", ylim=(0, 1.1))
    left.set_title("Fitting four targets (solid: DIP skip net; dashed: pixel MLP)", fontsize=9)
    left.legend(fontsize=7, ncol=2)
    its, db = _series(rows, "psnr_clean", network="dip", target="noisy")
    right.plot(its, db, color=TARGET_COLOURS["noisy"], label="DIP output vs clean image")
    right.axhline(noisy_input_db, color="grey", ls=":", label="noisy input vs clean")
    right.set(xscale="log", xlabel="iteration", ylabel="PSNR (dB)")
    right.set_title("Fitting the noisy image: it passes the clean one first", fontsize=9)
    right.legend(fontsize=7)
    return _save(fig, path)


def architectures(path: Path, rows: Sequence[dict], input_db: float) -> Path:
    """PSNR vs the clean image against iteration, one line per network."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for network in dict.fromkeys(r["network"] for r in rows):
        its, db = _series(rows, "psnr_clean", network=network)
        ax.plot(its, db, label=network, lw=1.3)
    ax.axhline(input_db, color="grey", ls=":", label="noisy input")
    ax.set(xscale="log", xlabel="iteration", ylabel="PSNR vs clean (dB)")
    ax.set_title("Denoising the same image with different networks", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def architectures_inpaint(path: Path, rows: Sequence[dict], strip: Sequence[tuple[str, np.ndarray]]) -> Path:
    """PSNR inside the holes against iteration, one line per network, above the final fills."""
    fig, grid, curve = _curve_above_strip(len(strip), 1.3, 4.6)
    for network in dict.fromkeys(r["network"] for r in rows):
        its, db = _series(rows, "psnr_hole", network=network)
        curve.plot(its, db, label=network, lw=1.3)
    curve.set(xscale="log", xlabel="iteration", ylabel="PSNR in the holes (dB)")
    curve.set_title("Filling large holes with different depths and architectures", fontsize=9)
    curve.legend(fontsize=7, ncol=2)
    _image_row(fig, grid, strip)
    return _save(fig, path)


def jpeg_timeline(
    path: Path,
    rows: Sequence[dict],
    jpeg_db: float,
    strip: Sequence[tuple[str, np.ndarray]],
) -> Path:
    """The PSNR curve above a strip of snapshots (JPEG input, outputs over time, clean original)."""
    fig, grid, curve = _curve_above_strip(len(strip), 1.5, 4.6)
    blocks = curve.twinx()
    for fit, colour in zip(dict.fromkeys(r["fit"] for r in rows), ("tab:blue", "tab:green"), strict=False):
        its, db = _series(rows, "psnr_clean", fit=fit)
        curve.plot(its, db, color=colour, label=f"{fit}: output vs clean original")
        its, db = _series(rows, "psnr_jpeg", fit=fit)
        blocks.plot(its, db, color=colour, ls="--", lw=0.9, label=f"{fit}: output vs the JPEG (right)")
    curve.axhline(jpeg_db, color="grey", ls=":", label="JPEG input vs clean")
    curve.set(xscale="log", xlabel="iteration", ylabel="PSNR vs clean (dB)")
    blocks.set_ylabel("PSNR vs the JPEG (dB): the blocks learnt", fontsize=8)
    lines = curve.get_legend_handles_labels()
    more = blocks.get_legend_handles_labels()
    curve.legend(lines[0] + more[0], lines[1] + more[1], fontsize=6, loc="lower left")
    _image_row(fig, grid, strip)
    return _save(fig, path)


def random_labels(path: Path, summary: Sequence[dict], corruption: Sequence[dict]) -> Path:
    """Training curves per condition, and test accuracy against label corruption."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for row in summary:
        left.plot(
            row["curve_epochs"], row["curve_train_accuracy"], label=f"{row['model']}: {row['condition']}"
        )
    left.set(xlabel="epoch", ylabel="train accuracy", ylim=(0, 1.02))
    left.set_title("Fitting digits: true labels vs randomised data (median seed)", fontsize=9)
    left.legend(fontsize=6, ncol=2)
    for model in dict.fromkeys(r["model"] for r in corruption):
        points = [r for r in corruption if r["model"] == model]
        right.plot([r["p"] for r in points], [r["test_accuracy"] for r in points], "o-", label=model)
    right.axhline(0.1, color="grey", ls=":", label="chance")
    right.set(xlabel="label corruption p", ylabel="test accuracy (median of seeds)", ylim=(0, 1.02))
    right.set_title("Test accuracy falls as labels are corrupted", fontsize=9)
    right.legend(fontsize=7)
    return _save(fig, path)


def random_weights(path: Path, rows: Sequence[dict], strip: Sequence[tuple[str, np.ndarray]]) -> Path:
    """Inversion PSNR against iteration per depth, above the image and its reconstructions."""
    fig, grid, curve = _curve_above_strip(len(strip), 1.25, 4.4)
    for depth in dict.fromkeys(r["depth"] for r in rows):
        its, db = _series(rows, "psnr", depth=depth)
        curve.plot(its, db, label=f"features of conv {depth}")
    curve.set(xscale="log", xlabel="iteration", ylabel="PSNR vs the image (dB)")
    curve.set_title("Inverting an untrained random net's features, by depth", fontsize=9)
    curve.legend(fontsize=7)
    _image_row(fig, grid, strip)
    return _save(fig, path)


def _curve_above_strip(images: int, inches_per_image: float, height: float):
    """A figure with a full-width curve panel above a row of ``images`` image panels."""
    fig = plt.figure(figsize=(inches_per_image * images, height))
    grid = fig.add_gridspec(2, images, height_ratios=(1.3, 1))
    return fig, grid, fig.add_subplot(grid[0, :])


def _image_row(fig, grid, strip: Sequence[tuple[str, np.ndarray]]) -> None:
    for i, (title, image) in enumerate(strip):
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(
            np.clip(image.squeeze(), 0, 1), cmap="gray" if image.shape[2] == 1 else None, vmin=0, vmax=1
        )
        ax.set_title(title, fontsize=7)
        ax.axis("off")


def _series(rows: Sequence[dict], column: str, **match) -> tuple[list, list]:
    picked = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return [r["iteration"] for r in picked], [r[column] for r in picked]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
