"""Generate the bundled samples from images that ship inside scikit-image (no downloads).

    python samples/make_samples.py

Origins (scikit-image's data folder; see its README for licences): astronaut (NASA, public
domain), chelsea (Stefan van der Walt, CC0), coffee (Rachel Michetti, CC0). Each is cropped,
downscaled to 128 px and degraded with a fixed seed, so the files are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data, transform

from dip_cli.io import Picture, save_image
from dip_cli.operators import simulate_jpeg, simulate_noise

HERE = Path(__file__).parent
SIZE = 128


def crop_resize(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    patch = image[top : top + side, left : left + side].astype(np.float32) / 255.0
    return transform.resize(patch, (SIZE, SIZE), anti_aliasing=True).astype(np.float32)


def text_mask(seed: int = 0) -> np.ndarray:
    """White = keep, black = text to remove, like the paper's kate mask."""
    mask = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(mask)
    font = ImageFont.load_default(size=13)
    lines = ["Deep Image", "Prior fills", "in text and", "scratches on", "old photos."]
    for row, line in enumerate(lines):
        draw.text((6, 4 + row * 25), line, fill=0, font=font)
    return np.asarray(mask) >= 128


def save(name: str, pixels: np.ndarray) -> None:
    save_image(HERE / name, Picture(pixels))
    print("wrote", HERE / name)


def main() -> None:
    astronaut = crop_resize(data.astronaut(), 0, 128, 256)
    save("astronaut_clean.png", astronaut)
    save("astronaut_noisy.png", simulate_noise(astronaut, 25, seed=0))

    chelsea = crop_resize(data.chelsea(), 30, 100, 256)
    save("chelsea_clean.png", chelsea)
    jpeg = Image.fromarray(np.round(chelsea * 255).astype(np.uint8))
    jpeg.save(HERE / "chelsea_q10.jpg", quality=10)  # the real JPEG file a user would have
    print("wrote", HERE / "chelsea_q10.jpg")
    assert np.allclose(simulate_jpeg(chelsea, 10), np.asarray(Image.open(HERE / "chelsea_q10.jpg")) / 255)

    coffee = crop_resize(data.coffee(), 20, 150, 360)
    known = text_mask()
    save("coffee_clean.png", coffee)
    save("coffee_text.png", np.where(known[..., None], coffee, 1.0).astype(np.float32))
    save("coffee_text_mask.png", known.astype(np.float32)[..., None])


if __name__ == "__main__":
    main()
