"""The README's JPEG before/after figure: one crop at quality 10 (4:2:0), restored three ways.

Panels, each zoomed 2x (nearest, so blocks stay visible): the JPEG as decoded, ``dip jpeg``
fitting the decoded pixels (before the file model), ``dip jpeg`` with its defaults (the file
model), ``--preset jpeg-avg3``, and the original. PSNR against the original is printed under
each. The crop is scikit-image's coffee (freely licensed), the 128 px centre crop that
``benchmarks.jpeg_quality`` scores.

    python -m benchmarks.jpeg_figure docs/jpeg_before_after.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.common import as_saved
from benchmarks.jpeg_quality import SOURCES, crop, encode
from dip_cli.io import Picture, decode_image
from dip_cli.metrics import psnr
from dip_cli.options import RunOptions
from dip_cli.tasks import resolve_settings, restore_picture

ZOOM = 2
LABEL_HEIGHT = 30


def restore(
    data: bytes, preset: str | None, as_file: bool, iters: int | None, threads: int | None
) -> np.ndarray:
    """``dip jpeg`` on the file (``as_file``: its coefficients) or on its decode (pixel loss)."""
    import warnings

    warnings.simplefilter("ignore")  # the pixel-loss run says it falls back; we know
    settings = resolve_settings("jpeg", preset, iters=iters)
    decoded = decode_image(data)
    restored, _ = restore_picture(
        "jpeg",
        Picture(decoded.pixels),
        settings,
        RunOptions(threads=threads),
        source=data if as_file else None,
    )
    return as_saved(restored.pixels)


def panel(pixels: np.ndarray, label: str) -> Image.Image:
    image = Image.fromarray(np.round(pixels * 255).astype(np.uint8))
    image = image.resize((image.width * ZOOM, image.height * ZOOM), Image.NEAREST)
    framed = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), "white")
    framed.paste(image, (0, 0))
    draw = ImageDraw.Draw(framed)
    for line, text in enumerate(label.split("\n")):
        draw.text((4, image.height + 2 + 13 * line), text, fill="black")
    return framed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--image", default="coffee", choices=sorted(SOURCES))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iters", type=int, default=None, help="per fit (default: the presets')")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    clean = crop(SOURCES[args.image](), args.size)
    data = encode(clean, 10, "4:2:0")
    jpeg = decode_image(data).pixels
    panels = [(jpeg, "JPEG q10 4:2:0")]
    for name, preset, as_file in (
        ("pixel loss (before)", None, False),
        ("file model (default)", None, True),
        ("jpeg-avg3", "jpeg-avg3", True),
    ):
        start = time.perf_counter()
        panels.append((restore(data, preset, as_file, args.iters, args.threads), name))
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    panels.append((clean, "original"))
    images = [
        panel(pixels, label if label == "original" else f"{label}\n{psnr(pixels, clean):.2f} dB")
        for pixels, label in panels
    ]
    figure = Image.new("RGB", (sum(i.width for i in images), images[0].height), "white")
    for k, image in enumerate(images):
        figure.paste(image, (k * images[0].width, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
