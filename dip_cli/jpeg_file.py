"""What a JPEG file holds, read exactly: quantized DCT coefficients, tables, subsampling, orientation.

A baseline or progressive JPEG stores, per 8x8 block of each YCbCr component (chroma usually
subsampled first), k = round(DCT(block - 128) / q). ``read_jpeg`` reads the k and q with
``jpeglib`` (libjpeg's own parser: restart markers and progressive scans are handled there),
so dip can fit the network to what the file holds instead of to the decoder's RGB output,
which adds the decoder's chroma upsampling and rounding on top. The operator that uses this
is ``operators.JpegModel``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOI = b"\xff\xd8\xff"  # every JPEG file starts with these bytes


@dataclass(frozen=True)
class JpegCoefficients:
    """The file's content, in stored orientation (before any EXIF rotation)."""

    height: int
    width: int
    coefficients: tuple[np.ndarray, ...]  # per component: (block rows, block cols, 8, 8) int16, k
    tables: tuple[np.ndarray, ...]  # per component: its (8, 8) quantization table q
    factors: tuple[tuple[int, int], ...]  # per component: (vertical, horizontal) subsampling vs luma
    orientation: int = 1  # EXIF orientation, 1-8 (1 = as stored)
    progressive: bool = False

    @property
    def subsampling(self) -> str:
        """'4:4:4', '4:2:2', '4:2:0', '4:4:0', 'gray' or e.g. '4:1:1 (h4v1)'."""
        if len(self.factors) == 1:
            return "gray"
        names = {(1, 1): "4:4:4", (1, 2): "4:2:2", (2, 2): "4:2:0", (2, 1): "4:4:0"}
        v, h = self.factors[1]
        return names.get((v, h), f"h{h}v{v}")

    @property
    def quality(self) -> int:
        """The IJG (libjpeg, Pillow, most cameras' and editors') quality 1-100 whose scaling of the
        standard luminance table comes nearest this file's: the median of the scale factors its
        entries imply. An estimate for files made with other tables."""
        table = np.asarray(self.tables[0], dtype=np.float64).reshape(64)
        usable = (table > 1) & (table < 255)  # entries clipped at 1 or 255 say little of the scale
        ratios = table[usable] * 100 / _IJG_LUMA[usable] if usable.any() else table * 100 / _IJG_LUMA
        scale = float(np.median(ratios))
        quality = 5000 / scale if scale > 100 else (200 - scale) / 2
        return int(np.clip(round(quality), 1, 100))

    @property
    def display_size(self) -> tuple[int, int]:
        """(height, width) as shown: the EXIF orientations 5-8 turn the stored image a quarter."""
        return (self.width, self.height) if self.orientation >= 5 else (self.height, self.width)

    def describe(self) -> dict:
        """For run.json: what the model used from the file."""
        return {
            "size": [self.width, self.height],
            "subsampling": self.subsampling,
            "progressive": self.progressive,
            "orientation": self.orientation,
            "quantization_tables": [table.tolist() for table in self.tables],
        }


#: The JPEG standard's example luminance table (Annex K), in natural order, which IJG scales.
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip


def is_jpeg(data: bytes) -> bool:
    return data[:3] == SOI


def read_jpeg(source: str | Path | bytes) -> JpegCoefficients | None:
    """The coefficients of a JPEG file (a path or its bytes); None if it is not a JPEG dip can
    model (not a JPEG at all, CMYK/YCCK, or components that do not subsample evenly)."""
    if isinstance(source, bytes):
        with tempfile.TemporaryDirectory() as folder:  # jpeglib reads from a path
            path = os.path.join(folder, "in.jpg")
            with open(path, "wb") as f:
                f.write(source)
            return _read(path, source[:3])
    with open(source, "rb") as f:
        head = f.read(3)
    return _read(str(source), head)


def _read(path: str, head: bytes) -> JpegCoefficients | None:
    import jpeglib

    if not is_jpeg(head):
        return None
    try:
        jpeg = jpeglib.read_dct(path)
        jpeg.load()
    except Exception:
        return None  # the pixel decoder reports a broken file; here it is just not modelled
    space = str(jpeg.jpeg_color_space)
    if (jpeg.num_components, space) not in ((1, "JCS_GRAYSCALE"), (3, "JCS_YCbCr")):
        return None  # CMYK, YCCK, or RGB stored without the YCbCr transform: not this model
    planes = [jpeg.Y] if jpeg.num_components == 1 else [jpeg.Y, jpeg.Cb, jpeg.Cr]
    sampling = np.asarray(jpeg.samp_factor).reshape(-1, 2)  # (v, h) per component
    top_v, top_h = sampling[:, 0].max(), sampling[:, 1].max()
    factors = []
    for v, h in sampling:
        if top_v % v or top_h % h:
            return None
        factors.append((int(top_v // v), int(top_h // h)))
    if factors[0] != (1, 1):
        return None  # luma subsampled against chroma: exotic, not modelled
    tables = tuple(np.asarray(jpeg.qt[n], dtype=np.float32) for n in jpeg.quant_tbl_no[: len(planes)])
    return JpegCoefficients(
        height=int(jpeg.height),
        width=int(jpeg.width),
        coefficients=tuple(np.asarray(p) for p in planes),
        tables=tables,
        factors=tuple(factors),
        orientation=_exif_orientation(path),
        progressive=bool(jpeg.progressive_mode),
    )


def _exif_orientation(path: str) -> int:
    from PIL import Image

    try:
        with Image.open(path) as image:
            value = image.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if value in range(1, 9) else 1
