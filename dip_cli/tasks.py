"""The task table: for each task, its default preset, the operator that made the observation,
and the baseline a user has without dip. ``restore_picture`` runs a task on a decoded picture.

Both the array API (``api``) and the file layer (``restore``) come through here, so a task's
rules (which preset for ``sr --scale 8``, alpha handling, the known pixels of an inpainting)
live in one place and nothing else branches on the task's name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dip_cli.core import restore_array
from dip_cli.errors import DipWarning, InputError
from dip_cli.io import Picture
from dip_cli.options import RunOptions
from dip_cli.presets import load_preset
from dip_cli.provenance import Record
from dip_cli.settings import EFFORT_SUFFIXES, EFFORTS, SR_KERNELS, SR_SCALES, STOP_RULES, Settings


@dataclass(frozen=True)
class Task:
    name: str
    default_preset: Callable[[int | None], str]  # scale -> preset name
    # (picture, known pixels, scale, the encoded file (a path or its bytes) or None, the SR
    # kernel) -> A
    operator: Callable[[Picture, np.ndarray | None, int | None, Path | bytes | None, str], object]
    baseline: Callable[[np.ndarray, tuple[int, int]], np.ndarray]  # observation, output size -> estimate


def _identity(picture: Picture, known, scale, source, kernel):
    from dip_cli.operators import Identity

    return Identity()


def _jpeg_file(picture: Picture, known, scale, source: Path | bytes | None, kernel):
    """The file's own coefficients when there is a JPEG file to read; the decoded pixels otherwise."""
    from dip_cli.jpeg_file import read_jpeg
    from dip_cli.operators import Identity, JpegModel

    jpeg = read_jpeg(source) if source is not None else None
    if jpeg is not None and jpeg.display_size == (picture.height, picture.width):
        return JpegModel(jpeg)
    warnings.warn(
        "the input is not a JPEG file dip can model (a PNG of a decoded JPEG, an array, CMYK): "
        "fitting the decoded pixels instead of the file's coefficients",
        DipWarning,
        stacklevel=2,
    )
    return Identity()


def _mask(picture: Picture, known: np.ndarray | None, scale, source, kernel):
    import torch

    from dip_cli.operators import Mask

    if known is None:
        raise InputError("inpainting needs a mask: which pixels are known (white = keep, black = fill)")
    return Mask(torch.from_numpy(known.astype(np.float32)))


def _downsample(picture: Picture, known, scale: int | None, source, kernel: str):
    from dip_cli.operators import Downsample

    return Downsample(scale, picture.channels, kernel)


def _as_observed(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return pixels


#: Each scale's default preset (x2 fits four times the low-res pixels of x4: a longer budget).
SR_PRESETS = {2: "sr2", 4: "sr4", 8: "sr8"}

#: Each task's row; its keys are ``settings.TASKS``, the names a preset's ``task`` may take.
TASK_TABLE: dict[str, Task] = {
    "denoise": Task("denoise", lambda scale: "denoise", _identity, _as_observed),
    "jpeg": Task("jpeg", lambda scale: "jpeg", _jpeg_file, _as_observed),
    "inpaint": Task("inpaint", lambda scale: "inpaint", _mask, _as_observed),
    # For super-resolution "the input" a user already has is its bicubic upscale.
    "sr": Task(
        "sr", lambda scale: SR_PRESETS.get(scale, "sr4"), _downsample, lambda y, size: upscale(y, size)
    ),
}


#: What ``dip jpeg`` gained over the JPEG with a built-in preset, mean of the 8 photo crops of
#: ``python -m benchmarks.versus --tasks jpeg`` (128 px), per chroma subsampling and measured
#: quality, and the best classical decoder there (jpegqs or jpeg2png) with its gain. ``jpeg``:
#: 2026-12-06; ``jpeg-fast`` (``--effort fast``): 2026-12-07, 4:2:0 only.
JPEG_OUTLOOK = {
    "jpeg": {
        "4:2:0": {10: (0.66, "jpeg2png", 0.48), 20: (0.77, "jpeg2png", 0.29), 30: (0.81, "jpegqs -q 6", 0.16),
                  50: (0.72, "jpegqs -q 6", 0.05), 75: (0.64, "jpegqs -q 6", -0.27)},
        "4:4:4": {10: (0.83, "jpeg2png", 0.79), 20: (1.05, "jpeg2png", 0.44), 30: (1.06, "jpegqs -q 6", 0.39),
                  50: (0.94, "jpegqs -q 6", 0.32), 75: (0.82, "jpegqs -q 6", -0.02)},
    },
    "jpeg-fast": {
        "4:2:0": {10: (0.82, "jpeg2png", 0.48), 20: (0.68, "jpeg2png", 0.29), 30: (0.59, "jpegqs -q 6", 0.16),
                  50: (0.60, "jpegqs -q 6", 0.05), 75: (0.50, "jpegqs -q 6", -0.27)},
    },
}  # fmt: skip


def jpeg_outlook(source: Path | bytes, preset: str = "jpeg") -> str | None:
    """What to expect for this JPEG file: its estimated quality and, where ``preset`` was
    measured at its chroma subsampling, what dip and the best classical decoder gained at the
    nearest quality measured; None for a file dip cannot model."""
    from dip_cli.jpeg_file import read_jpeg

    jpeg = read_jpeg(source)
    if jpeg is None:
        return None
    quality, about = jpeg.quality, f"a quality-{jpeg.quality} JPEG ({jpeg.subsampling})"
    table = JPEG_OUTLOOK.get(preset, {}).get(jpeg.subsampling)
    if not table:
        return f"{about}; what preset {preset} gains at it has not been measured"
    nearest = min(table, key=lambda measured: abs(measured - quality))
    dip, anchor, anchor_gain = table[nearest]
    return (
        f"{about}. On photo crops at quality {nearest} dip ({preset}) gained {dip:+.2f} dB over the JPEG "
        f"on average, {anchor} {anchor_gain:+.2f} dB (docs/benchmarks.md)"
    )


def effort_preset(task: str, scale: int | None = None, effort: str = "default") -> str:
    """The built-in preset ``--effort`` runs for this task (and ``sr``'s scale): the task's
    default preset, or its ``-fast`` or ``-avg3`` sibling (``settings.EFFORT_SUFFIXES``)."""
    if effort not in EFFORTS:
        raise InputError(f"effort must be one of {', '.join(EFFORTS)}, got {effort!r}")
    return TASK_TABLE[task].default_preset(scale) + EFFORT_SUFFIXES[effort]


def preset_name(task: str, preset: str | None, scale: int | None, effort: str = "default") -> str:
    """The preset a run uses: the one named (a built-in name or a file), else ``effort``'s."""
    if preset is not None and effort != "default":
        raise InputError(
            f"give --preset or --effort, not both: --effort {effort} runs the preset "
            f"{effort_preset(task, scale, effort)}"
        )
    return preset or effort_preset(task, scale, effort)


def resolve_settings(
    task: str,
    preset: str | None = None,
    *,
    iters: int | None = None,
    stop: str | None = None,
    scale: int | None = None,
    effort: str = "default",
) -> Settings:
    """The task's preset for ``effort`` (or the one named) with the overrides, every value checked."""
    if task == "sr" and scale not in SR_SCALES:
        raise InputError(f"scale {scale!r} is not supported; use one of {', '.join(map(str, SR_SCALES))}")
    if iters is not None and (isinstance(iters, bool) or not isinstance(iters, int) or iters < 1):
        raise InputError(f"iters must be an integer >= 1, got {iters!r}")
    if stop is not None and stop not in STOP_RULES:
        raise InputError(f"stop must be one of {', '.join(STOP_RULES)}, got {stop!r}")
    settings = load_preset(preset_name(task, preset, scale, effort))
    return settings.with_overrides(iters=iters, stop=stop)


def check_kernel(kernel: str) -> None:
    """A user's ``--kernel`` / ``kernel=``: one of ``SR_KERNELS``, or one line and exit 2."""
    if kernel not in SR_KERNELS:
        raise InputError(f"kernel must be one of {', '.join(SR_KERNELS)}, got {kernel!r}")


def check_settings(settings: Settings, channels: int = 3) -> None:
    """Build the preset's network once, so a bad network option fails before any image does."""
    from dip_cli.networks import build_for

    build_for(settings, channels)


def restore_picture(
    task: str,
    picture: Picture,
    settings: Settings,
    options: RunOptions = RunOptions(),
    *,
    known: np.ndarray | None = None,
    scale: int | None = None,
    kernel: str = "lanczos2",
    source: Path | bytes | None = None,
    reference: np.ndarray | None = None,
    info: dict | None = None,
) -> tuple[Picture, Record]:
    """Restore a decoded picture; its alpha channel is put back (resized for sr).

    ``source`` is the encoded file the picture was decoded from, for tasks that model the
    file itself (``jpeg`` reads its DCT coefficients). ``kernel`` is the antialiasing kernel
    the low-res input of ``sr`` was made with (``SR_KERNELS``; the entry points check it with
    ``check_kernel`` before any run folder is made).
    """
    spec = TASK_TABLE[task]
    operator = spec.operator(picture, known, scale, source, kernel)
    size = operator.output_size(picture.height, picture.width)
    pixels, record = restore_array(
        picture.pixels,
        operator,
        settings,
        options,
        reference=reference,
        baseline=None if reference is None else spec.baseline(picture.pixels, size),
        info={"task": task, **(info or {})},
    )
    alpha = picture.alpha
    if alpha is not None and alpha.shape != size:
        alpha = upscale(alpha[..., None], size)[..., 0]
    return Picture(pixels, alpha, picture.bit_depth), record


def upscale(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of (H, W, C) float pixels to ``size``, clipped to [0, 1]."""
    from PIL import Image

    channels = [
        np.asarray(
            Image.fromarray(pixels[..., c].astype(np.float32)).resize(
                (size[1], size[0]), Image.Resampling.BICUBIC
            )
        )
        for c in range(pixels.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0, 1).astype(np.float32)
