"""Peak memory of dip on a very large photo: one iteration per tile, the layout of the defaults.

    python -m benchmarks.peak_memory                          # dip denoise, 6000 x 4000 (24 MP), sigma 25
    python -m benchmarks.peak_memory --task jpeg              # dip jpeg, quality 10
    python -m benchmarks.peak_memory -- --threads 1           # extra options for dip (one tile at a time)

The photo is ``large_photo``'s mosaic of real photos repeated to the size; ``dip <task> photo
--iters 1 --stop fixed`` runs in a child process, and the peak of the proportional set sizes of
dip and its tile workers together is read every 2 s (``large_photo.run_cli``). A full run's
memory is that of these steps: each tile's fit holds the same buffers at every step. Prints one
table row; a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.large_photo import corrupt, mosaic, run_cli


def size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 6000x4000, got {text!r}") from None
    return width, height


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--task", choices=("denoise", "jpeg"), default="denoise")
    parser.add_argument("--size", type=size, default="6000x4000", help="WIDTHxHEIGHT (default: 24 MP)")
    parser.add_argument("extra", nargs="*", help="options passed to dip (after --)")
    args = parser.parse_args()
    width, height = args.size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = corrupt(mosaic(width, height), args.task, folder, 10, 25.0)
        output = folder / "restored.png"
        extra = ["--iters", "1", "--stop", "fixed", *args.extra]
        seconds, cpu, peak, code = run_cli(args.task, source, output, extra)
    print(f"| {args.task} {width}x{height} {' '.join(args.extra)} | {peak:.2f} GB | {seconds:.0f} s | "
          f"{cpu:.0f} s CPU | exit {code} |")  # fmt: skip


if __name__ == "__main__":
    main()
