"""Reading and writing images and masks.

Pixels travel as float32 numpy arrays (H, W, C) in [0, 1] with C = 1 (grayscale) or 3 (RGB);
an alpha channel is kept aside and put back on save. 16-bit PNG and TIFF are read and written
at 16 bits (Pillow reads 16-bit colour PNGs as 8-bit, so those go through pypng and tifffile).
Every write is atomic: a temporary file in the same folder, then a rename, so a killed run
never leaves a half-written image that looks finished.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dip_cli.errors import InputError

READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
WRITE_EXTENSIONS = READ_EXTENSIONS
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Picture:
    """A decoded image: pixels (H, W, C) float32 in [0, 1], optional alpha (H, W), bit depth."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]


def load_image(path: str | Path) -> Picture:
    """Read an image file; raise InputError with the path and the reason if that fails."""
    path = Path(path)
    _check_readable(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            return _split_channels(*_read_tiff(path))
        if _png_bit_depth(path) == 16:
            return _split_channels(*_read_png16(path))
        return _read_with_pillow(path)
    except InputError:
        raise
    except Exception as exc:  # decoders raise many types for corrupt data
        raise InputError(f"cannot read {path}: {exc}. Is it a valid image file?") from exc


def decode_image(data: bytes, name: str = "the image bytes") -> Picture:
    """Decode an encoded image held in memory (JPEG, PNG, ... bytes), as ``load_image`` does."""
    import io

    if not data:
        raise InputError(f"{name} are empty (0 bytes)")
    try:
        return _read_with_pillow(io.BytesIO(data), name)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot decode {name}: {exc}. Are they a valid image file's bytes?") from exc


def load_mask(path: str | Path, height: int, width: int, *, invert: bool = False) -> np.ndarray:
    """Read a mask as a boolean (H, W) array: True = known pixel (white / non-zero).

    Any mode is accepted; values are thresholded at 50% of the full range.
    """
    mask_picture = load_image(path)
    if (mask_picture.height, mask_picture.width) != (height, width):
        raise InputError(
            f"mask {path} is {mask_picture.width}x{mask_picture.height} but the image is "
            f"{width}x{height}; the mask must have the same size as the image"
        )
    known = mask_picture.pixels.mean(axis=2) >= 0.5
    return finish_mask(~known if invert else known, str(path))


def mask_from_alpha(picture: Picture, *, invert: bool = False) -> np.ndarray:
    """Use the image's alpha channel as the mask: opaque = known, transparent = fill."""
    if picture.alpha is None:
        raise InputError(
            "--mask alpha needs an image with an alpha channel (RGBA or LA); "
            "this image has none: pass a mask file with --mask PATH"
        )
    known = picture.alpha >= 0.5
    return finish_mask(~known if invert else known, "the alpha channel")


def finish_mask(known: np.ndarray, source: str) -> np.ndarray:
    if not known.any():
        raise InputError(
            f"{source} marks every pixel as missing (all black); white = keep, black = fill. "
            "Did you mean --invert-mask?"
        )
    return known


def save_image(path: str | Path, picture: Picture) -> None:
    """Write atomically; the format follows the extension, 16-bit where the format allows."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_EXTENSIONS:
        raise InputError(
            f"cannot write {path}: unknown extension {suffix!r}; use one of {', '.join(WRITE_EXTENSIONS)}"
        )
    data = _merge_channels(picture)
    bits16 = picture.bit_depth == 16 and suffix in (".png", ".tif", ".tiff")
    array = _quantize(data, 16 if bits16 else 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    try:
        _write_array(Path(tmp_name), array, suffix)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def check_output_path(path: str | Path, what: str = "the output", *, image: bool = False) -> None:
    """Fail before any work on an output that could not be written: a file where a folder
    must be, a folder without write permission, or (``image``) an extension dip cannot write."""
    path = Path(path)
    if image and path.suffix.lower() not in WRITE_EXTENSIONS:
        raise InputError(
            f"cannot write {what} {path}: unknown extension {path.suffix.lower() or '(none)'!r}; "
            f"use one of {', '.join(WRITE_EXTENSIONS)}"
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what} {path}: no permission to write in {parent}")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file (run.json, summaries) so that readers see the old or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    tmp.replace(path)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# --- reading ---------------------------------------------------------------------------------


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path} is not readable: check its permissions")


def _png_bit_depth(path: Path) -> int | None:
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] != _PNG_SIGNATURE or len(head) < 26:
        return None
    return head[24]


def _read_with_pillow(path, name: str | None = None) -> Picture:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError:
        raise InputError(
            f"{name or path} is not an image dip can read (supported: {', '.join(READ_EXTENSIONS)})"
        ) from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name or path} is too large to open safely: {exc}") from None
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = np.asarray(image, dtype=np.float32)
        if mode != "F":  # float images are taken to be in [0, 1] already
            gray = gray / 65535.0
        return Picture(np.clip(gray, 0, 1)[..., None], None, 16)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, ... all become RGB
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    pixels = array.astype(np.float32)
    pixels /= 255.0  # in place: one float copy of a large photo at a time, not two
    return _split_channels(pixels, 8)


def _read_png16(path: Path) -> tuple[np.ndarray, int]:
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    array = array.reshape(height, width, planes).astype(np.float32) / 65535.0
    return array, 16


def _read_tiff(path: Path) -> tuple[np.ndarray, int]:
    import tifffile

    array = tifffile.imread(path)
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[-1] > 4:
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise InputError(f"{path} has an unsupported TIFF layout {array.shape}")
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0, 16
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0, 8
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(array.astype(np.float32), 0, 1), 16
    raise InputError(f"{path} has unsupported sample type {array.dtype}; use 8 or 16-bit")


def _split_channels(array: np.ndarray, bit_depth: int) -> Picture:
    """(H, W, 1|2|3|4) -> pixels (1 or 3 channels) + alpha."""
    channels = array.shape[-1]
    alpha = array[..., -1].copy() if channels in (2, 4) else None
    colour = array[..., :1] if channels in (1, 2) else array[..., :3]
    return Picture(np.ascontiguousarray(colour, dtype=np.float32), alpha, bit_depth)


# --- writing ---------------------------------------------------------------------------------


def _merge_channels(picture: Picture) -> np.ndarray:
    if picture.alpha is None:
        return picture.pixels
    return np.concatenate([picture.pixels, picture.alpha[..., None]], axis=2)


def _quantize(data: np.ndarray, bits: int, rows: int = 256) -> np.ndarray:
    """Clip to [0, 1] and round to ``bits``, a band of ``rows`` at a time: whole-image float
    temporaries would cost a 24 MP photo a gigabyte at the very end of its run."""
    top = (1 << bits) - 1
    out = np.empty(data.shape, np.uint16 if bits == 16 else np.uint8)
    for start in range(0, data.shape[0], rows):
        band = np.clip(data[start : start + rows], 0, 1) * top
        out[start : start + rows] = np.round(band)
    return out


def _write_array(path: Path, array: np.ndarray, suffix: str) -> None:
    channels = array.shape[2]
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, array[..., 0] if channels == 1 else array)
        return
    if array.dtype == np.uint16:  # only PNG reaches here at 16 bits
        import png

        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        height, width = array.shape[:2]
        png.from_array(array.reshape(height, width * channels), f"{mode};16").save(str(path))
        return
    from PIL import Image

    if suffix in (".jpg", ".jpeg") and channels in (2, 4):
        array = array[..., : channels - 1]  # JPEG has no alpha
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    options = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"lossless": True}}
    image.save(path, format=_PIL_FORMATS[suffix], **options.get(suffix, {}))


_PIL_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
