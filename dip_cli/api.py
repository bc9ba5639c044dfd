"""dip from Python: arrays in, arrays out (scikit-image style).

Each function takes the image first and keyword-only options, checks its input before any
work (the message names the value and the fix), and returns the restored image with the
input's layout and dtype: H x W stays 2-D, H x W x C stays 3-D (an alpha channel is kept
aside and put back), uint8 gives uint8, uint16 gives uint16, float in [0, 1] gives the same
float dtype. Errors are ``dip_cli.errors.InputError``, which is also a ``ValueError``.

Options shared by every function:

preset : str, optional
    A built-in preset name (``dip presets`` lists them) or a ``.toml`` file; default: the task's.
effort : {"fast", "default", "best"}
    Which of the task's built-in presets runs when ``preset`` is not given: ``fast`` (its
    ``-fast`` preset: about a third of the default's time), ``default``, or ``best`` (its
    ``-avg3`` preset: independent fits averaged, three times the time or more). What each
    gains and costs: ``docs/benchmarks.md`` (effort levels).
iters : int, optional
    The iteration budget (default: the preset's).
stop : {"auto", "fixed"}, optional
    ``auto`` stops by ES-WMV when the outputs settle; ``fixed`` runs the whole budget.
seed : int
    Same seed, same machine kind and threads: the same output.
device : {"auto", "cpu", "cuda", "mps"}
threads : int, optional
    CPU threads (sets torch's thread count for the process; default: 1 below 64x64 px, else
    all cores up to 8). A large image's tiles (and an ``-avg3`` preset's fits) are fitted that
    many at once, each in a worker process with one thread (``resources.parallel_fits``).
run : str or path, optional
    A run folder: checkpoints, metrics.csv, run.json and snapshots go there, and calling again
    with the same folder and arguments resumes (or returns at once if the run had finished).
progress : bool or callable, optional
    True draws a progress bar on stderr; a callable is called with each ``fit.Status``.
tile : "auto", "off" or int
    Large images are restored as overlapping tiles, each its own DIP problem, blended with a
    smooth window: memory is bounded by the tile, and each tile is a problem the presets'
    budgets are made for. ``auto`` fits an image of up to ``resources.AUTO_WHOLE`` (512) px a side
    whole and tiles a larger one, in tiles of up to ``settings.AUTO_TILE`` (576) px, or the
    preset's ``[tile] max_side`` where it asks for less (the denoisers: 256 px, and images
    larger than that are tiled), smaller for a
    network whose fit would need more than ``resources.AUTO_TILE_BYTES`` on a CPU (less for a
    photo so large that its own planes are a large share of the run's memory:
    ``resources.fit_budget``), or than the free memory on a GPU (``resources.auto_tile_side``); an int
    is the largest tile side in pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dip_cli.errors import InputError
from dip_cli.io import Picture
from dip_cli.options import RunOptions

__all__ = ["denoise", "inpaint", "jpeg", "sr"]

Progress = bool | Callable | None


def denoise(
    image: np.ndarray,
    *,
    preset: str | None = None,
    effort: str = "default",
    iters: int | None = None,
    stop: str | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    run: str | os.PathLike | None = None,
    progress: Progress = None,
    tile: str | int = "auto",
) -> np.ndarray:
    """Remove noise from an image with Deep Image Prior.

    Parameters
    ----------
    image : ndarray
        H x W (gray) or H x W x C with C = 1, 2 (gray + alpha), 3 (RGB) or 4 (RGBA);
        uint8, uint16, or float in [0, 1].
    preset, effort, iters, stop, seed, device, threads, run, progress, tile
        See the module's documentation (``help(dip_cli.api)``).

    Returns
    -------
    ndarray
        The denoised image, with the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import dip_cli
    >>> noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> out = dip_cli.denoise(noisy, iters=20)
    >>> out.shape, out.dtype
    ((32, 32, 3), dtype('uint8'))
    """
    choice = _Choice(preset, effort, iters, stop)
    options = _run_options(seed, device, threads, run, progress, tile)
    return _restore("denoise", *_as_picture(image), choice, options)


def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    preset: str | None = None,
    effort: str = "default",
    iters: int | None = None,
    stop: str | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    run: str | os.PathLike | None = None,
    progress: Progress = None,
    tile: str | int = "auto",
) -> np.ndarray:
    """Fill in the unknown pixels of an image; the known ones are returned unchanged.

    Each filled pixel is three parts the network's fill and one part a biharmonic fill
    (scikit-image's ``inpaint_biharmonic``), whose errors differ from the network's.

    Parameters
    ----------
    image : ndarray
        As for ``denoise``; the values under unknown pixels are ignored.
    mask : ndarray of bool, H x W
        True (or 1) = known pixel, False (or 0) = fill. Numbers in [0, 1] are thresholded at 0.5.
    preset, effort, iters, stop, seed, device, threads, run, progress, tile
        See the module's documentation.

    Returns
    -------
    ndarray
        The inpainted image, with the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import dip_cli
    >>> image = np.full((32, 32), 0.5)
    >>> known = np.ones((32, 32), bool)
    >>> known[10:20, 10:20] = False
    >>> out = dip_cli.inpaint(image, known, iters=10)
    >>> out.shape, out.dtype, bool((out[known] == image[known]).all())
    ((32, 32), dtype('float64'), True)
    """
    picture, layout = _as_picture(image)
    known = _as_known(mask, (picture.height, picture.width))
    choice = _Choice(preset, effort, iters, stop)
    options = _run_options(seed, device, threads, run, progress, tile)
    return _restore("inpaint", picture, layout, choice, options, known=known)


def sr(
    image: np.ndarray,
    *,
    scale: int = 4,
    kernel: str = "lanczos2",
    preset: str | None = None,
    effort: str = "default",
    iters: int | None = None,
    stop: str | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    run: str | os.PathLike | None = None,
    progress: Progress = None,
    tile: str | int = "auto",
) -> np.ndarray:
    """Super-resolve an image: the result is ``scale`` times larger on each side.

    Parameters
    ----------
    image : ndarray
        As for ``denoise``.
    scale : {2, 4, 8}
        The upscaling factor. The default preset is ``sr4`` (``sr2`` for 2, ``sr8`` for 8).
    kernel : {"lanczos2", "bicubic", "lanczos3", "area"}
        The antialiasing kernel the image was made smaller with, if known: the paper's
        Lanczos-2 (default), or the antialiased bicubic, Lanczos-3 or area (box) resize of
        Pillow and OpenCV. The fit compares the input with the result made smaller that way.
    preset, effort, iters, stop, seed, device, threads, run, progress, tile
        See the module's documentation.

    Returns
    -------
    ndarray
        (scale * H) x (scale * W) [x C], the input's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import dip_cli
    >>> small = np.random.default_rng(0).random((12, 16, 3), dtype=np.float32)
    >>> dip_cli.sr(small, scale=2, iters=5).shape
    (24, 32, 3)
    """
    from dip_cli.tasks import check_kernel

    check_kernel(kernel)
    choice = _Choice(preset, effort, iters, stop)
    options = _run_options(seed, device, threads, run, progress, tile)
    return _restore("sr", *_as_picture(image), choice, options, scale=scale, kernel=kernel)


def jpeg(
    source: str | os.PathLike | bytes | np.ndarray,
    *,
    preset: str | None = None,
    effort: str = "default",
    iters: int | None = None,
    stop: str | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    run: str | os.PathLike | None = None,
    progress: Progress = None,
    tile: str | int = "auto",
) -> np.ndarray:
    """Remove JPEG artifacts (8x8 blocks, ringing).

    Parameters
    ----------
    source : path, bytes or ndarray
        A JPEG file, its bytes, or an already decoded image (as for ``denoise``). A file or
        bytes give a uint8 result, 2-D for a grayscale JPEG; EXIF orientation is applied.
    preset, effort, iters, stop, seed, device, threads, run, progress, tile
        See the module's documentation.

    Returns
    -------
    ndarray
        The restored image.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> import dip_cli
    >>> buffer = io.BytesIO()
    >>> Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(buffer, "JPEG", quality=10)
    >>> out = dip_cli.jpeg(buffer.getvalue(), iters=5)
    >>> out.shape, out.dtype
    ((24, 24, 3), dtype('uint8'))
    """
    choice = _Choice(preset, effort, iters, stop)
    options = _run_options(seed, device, threads, run, progress, tile)
    if isinstance(source, str | os.PathLike | bytes | bytearray | memoryview):
        from dip_cli.io import decode_image, load_image

        if isinstance(source, str | os.PathLike):
            picture = load_image(Path(source))
            encoded = Path(source).read_bytes()
        else:
            encoded = bytes(source)
            picture = decode_image(encoded, "the JPEG bytes")
        layout = _Layout(np.dtype(np.uint8) if picture.bit_depth == 8 else np.dtype(np.uint16), 3)
        if picture.channels == 1 and picture.alpha is None:
            layout = _Layout(layout.dtype, 2)
        return _restore("jpeg", picture, layout, choice, options, source=encoded)
    return _restore("jpeg", *_as_picture(source), choice, options)


# --- the shared body ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    """Which settings: a preset and the caller's overrides."""

    preset: str | None
    effort: str
    iters: int | None
    stop: str | None


def _run_options(seed, device, threads, run, progress: Progress, tile) -> RunOptions:
    """The run options; from Python a run folder resumes by itself: the same call again
    continues (or returns at once if the run had finished)."""
    if progress not in (None, True, False) and not callable(progress):
        raise InputError(f"progress must be True, False, None or a callable, got {progress!r}")
    return RunOptions(
        seed=seed, device=device, threads=threads, tile=tile, run_dir=run, resume=run is not None,
        observer=_observer(progress),
    )  # fmt: skip


@dataclass(frozen=True)
class _Layout:
    """What the result must look like: the input's dtype and number of dimensions."""

    dtype: np.dtype
    ndim: int


def _restore(
    task: str,
    picture: Picture,
    layout: _Layout,
    choice: _Choice,
    options: RunOptions,
    *,
    known=None,
    scale=None,
    kernel: str = "lanczos2",
    source=None,
) -> np.ndarray:
    from dip_cli.tasks import resolve_settings, restore_picture

    settings = resolve_settings(
        task, choice.preset, iters=choice.iters, stop=choice.stop, scale=scale, effort=choice.effort
    )
    restored, _record = restore_picture(
        task, picture, settings, options, known=known, scale=scale, kernel=kernel, source=source
    )
    return _as_array(restored, layout)


def _observer(progress: Progress):
    if progress is True:
        from rich.console import Console

        from dip_cli.report import ProgressDisplay

        return ProgressDisplay(Console(stderr=True))
    if callable(progress):
        from dip_cli.progress import CallbackObserver

        return CallbackObserver(progress)
    return None


# --- arrays <-> pictures --------------------------------------------------------------------------

_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _as_picture(image) -> tuple[Picture, _Layout]:
    """Validate an image array and convert it to float32 pixels (+ alpha) in [0, 1]."""
    if isinstance(image, str | os.PathLike):
        raise InputError(
            f"image must be a NumPy array, got the path {str(image)!r}; read it first "
            "(e.g. skimage.io.imread) or use the dip command for files"
        )
    array = np.asarray(image)
    if array.dtype == object or array.size == 0:
        raise InputError(f"image must be a non-empty numeric array, got {type(image).__name__} {array.shape}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4):
            hint = "; it looks channels-first: pass np.moveaxis(image, 0, -1)"
        raise InputError(
            f"image must be H x W (gray) or H x W x C with C = 1, 2, 3 or 4 (channels last), "
            f"got shape {array.shape}{hint}"
        )
    if array.dtype in _SCALES:
        pixels = array.astype(np.float32) / _SCALES[array.dtype]
        bit_depth = 16 if array.dtype == np.uint16 else 8
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError("image has NaN or infinite values; replace them (e.g. np.nan_to_num) first")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise InputError(
                f"a float image must hold values in [0, 1], this one spans [{low:g}, {high:g}]; "
                "divide by 255 if it holds 0-255 values, or clip it"
            )
        pixels, bit_depth = array.astype(np.float32), 16
    else:
        raise InputError(
            f"image dtype {array.dtype} is not supported; use uint8, uint16 or float in [0, 1] "
            "(e.g. image.astype(np.uint8) for 0-255 integers)"
        )
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    alpha = pixels[..., -1].copy() if channels in (2, 4) else None
    colour = pixels[..., :1] if channels in (1, 2) else pixels[..., :3]
    return Picture(np.ascontiguousarray(colour), alpha, bit_depth), _Layout(array.dtype, array.ndim)


def _as_known(mask, shape: tuple[int, int]) -> np.ndarray:
    """Validate a mask: H x W (or H x W x 1), bool or numbers in [0, 1]; True = known."""
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.shape != shape:
        raise InputError(
            f"mask shape {array.shape} does not match the image's {shape}; give one value per pixel "
            "(True = known, False = fill)"
        )
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise InputError(f"mask must be boolean or numbers in [0, 1], got dtype {array.dtype}")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise InputError(
                f"mask values must be 0/1 or boolean (True = known), got values in [{low:g}, {high:g}]; "
                "threshold it first, e.g. mask > 127"
            )
        array = array >= 0.5
    if not array.any():
        raise InputError(
            "the mask marks every pixel as unknown (all False); True = known pixel. Did you mean ~mask?"
        )
    return array


def _as_array(picture: Picture, layout: _Layout) -> np.ndarray:
    """Back to the caller's layout and dtype (rounded for integers)."""
    data = np.clip(picture.pixels, 0, 1)
    if picture.alpha is not None:
        data = np.concatenate([data, picture.alpha[..., None]], axis=2)
    if layout.ndim == 2:
        data = data[..., 0]
    if layout.dtype in _SCALES:
        return np.round(data * _SCALES[layout.dtype]).astype(layout.dtype)
    return data.astype(layout.dtype)
