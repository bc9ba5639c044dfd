"""One fit on one thread or on all of them: seconds per step by image size, as ``dip`` runs a
single image (whole, one fit).

    python -m benchmarks.threads                       # jpeg and denoise at 128, 256, 512 px
    python -m benchmarks.threads --sizes 96 128 --tasks jpeg

Each case is a centre crop of the paper's F16 (JPEG quality 10, or Gaussian noise sigma 25), fitted
with the task's default preset in a fresh child process with ``--threads`` set, once for a short
and once for a longer budget: the difference over the extra steps is the step time, without the
set-up. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from benchmarks.common import DATA, center_crop

SHORT, LONG = 20, 120


def child(task: str, size: int, threads: int, iters: int) -> float:
    """Seconds of ``restore_array`` for ``iters`` steps in this process (called in a child)."""
    from dip_cli.core import restore_array
    from dip_cli.io import decode_image, load_image
    from dip_cli.options import RunOptions
    from dip_cli.tasks import TASK_TABLE, resolve_settings

    clean = center_crop(load_image(DATA / "denoising/F16_GT.png").pixels, size)
    if task == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(np.uint8(np.round(clean * 255))).save(buffer, "JPEG", quality=10)
        picture = decode_image(buffer.getvalue(), "the crop")
        operator = TASK_TABLE["jpeg"].operator(picture, None, None, buffer.getvalue(), "lanczos2")
        y = picture.pixels
    else:
        y = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1).astype(
            np.float32
        )
        operator = TASK_TABLE["denoise"].operator(None, None, None, None, "lanczos2")
    settings = resolve_settings(task, iters=iters, stop="fixed")
    start = time.perf_counter()
    restore_array(y, operator, settings, RunOptions(threads=threads, tile="off"))
    return time.perf_counter() - start


def step_seconds(task: str, size: int, threads: int) -> float:
    seconds = []
    for iters in (SHORT, LONG):
        code = f"from benchmarks.threads import child; print(child({task!r}, {size}, {threads}, {iters}))"
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        seconds.append(float(out.split()[-1]))
    return (seconds[1] - seconds[0]) / (LONG - SHORT)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="*", default=["jpeg", "denoise"], choices=["jpeg", "denoise"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[128, 256, 512])
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    args = parser.parse_args()
    rows = []
    for task in args.tasks:
        for size in args.sizes:
            per_step = {t: step_seconds(task, size, t) for t in args.threads}
            rows.append({"task": task, "size": size, **{f"threads_{t}": s for t, s in per_step.items()}})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    header = " | ".join(f"{t} thread{'s' if t > 1 else ''} (ms a step)" for t in args.threads)
    print(f"\n| task | side | {header} | time on {args.threads[-1]} / on {args.threads[0]} |")
    print("|---|---|" + "---|" * (len(args.threads) + 1))
    for row in rows:
        cells = " | ".join(f"{1000 * row[f'threads_{t}']:.1f}" for t in args.threads)
        ratio = row[f"threads_{args.threads[-1]}"] / row[f"threads_{args.threads[0]}"]
        print(f"| {row['task']} | {row['size']} | {cells} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
