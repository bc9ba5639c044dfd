"""The paper's large-hole inpainting image at full resolution, cropped for a CPU run.

    python -m benchmarks.library_crop OUT_DIR
    dip experiment architectures --image OUT_DIR/library_crop.png --mask OUT_DIR/library_crop_mask.png

The window is chosen by a rule fixed before any run: among the 128 x 128 windows (on a 32 px
grid) of ../shared/data/dip/inpainting/library_mask.png whose holes cover 20-30%, the one whose
hole reaches farthest from any known pixel (59 px: left 352, top 192): the paper's holes at their own scale,
wider than the receptive fields of the 2-level hourglass (23 px) and the ResNet (33 px).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dip" / "inpainting"
SIDE, STRIDE = 128, 32


def pick_window(known: np.ndarray) -> tuple[int, int]:
    candidates = []
    for top in range(0, known.shape[0] - SIDE + 1, STRIDE):
        for left in range(0, known.shape[1] - SIDE + 1, STRIDE):
            window = known[top : top + SIDE, left : left + SIDE]
            if 0.2 <= 1 - window.mean() <= 0.3:
                reach = ndimage.distance_transform_edt(~window).max()
                candidates.append((reach, -top, -left))
    _, top, left = max(candidates)
    return -top, -left


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    image = Image.open(DATA / "library.png").convert("RGB")
    mask = Image.open(DATA / "library_mask.png").convert("L")
    top, left = pick_window(np.asarray(mask) >= 128)
    box = (left, top, left + SIDE, top + SIDE)
    image.crop(box).save(out / "library_crop.png")
    mask.crop(box).save(out / "library_crop_mask.png")
    print(f"library window at left {left}, top {top}, written to {out}")


if __name__ == "__main__":
    main()
