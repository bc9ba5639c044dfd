"""The GPU check: what dip does on a GPU, in one run of at most 8 minutes on one H100, one table.

    python -m benchmarks.gpu_check --out gpu-check/                      # on the GPU machine
    python -m benchmarks.gpu_check --out /tmp/gc --device cpu --quick     # the same, end to end, on a CPU

No GPU has been lent to this project yet: the CPU run proves the script, so that the first
session with a GPU spends its few minutes measuring, not debugging. Sections, each with its
own slice of the time (one that fails or runs out says so, and the others still run):

1. end to end: ``dip jpeg`` (quality 20) and ``dip denoise`` (sigma 25) on a 512 px photo,
   through the CLI in a child process exactly as a user types them: wall time, gain.
2. precision: a 512 px JPEG fit for a fixed number of steps in fp32 and in bf16 autocast
   (the preset key ``[fit] precision``): ms per step, and the PSNR each reached.
3. stacked: N = 1, 2, 4, 8 JPEG nets on 512 px tiles fitted at once in one process, their
   weights stacked (``benchmarks.stacked_fits``), against one at a time: ms per step per tile.
4. 12 MP: ``dip jpeg`` on a 4000 x 3000 photo (quality 20) with the defaults: wall time, peak
   GPU memory and gain, or, where its slice ends first, the ETA at that point.
5. architectures at the paper's width and budget (``dip experiment architectures --width 128
   --iters 5000``), in the time that remains.

``--quick`` shrinks every size and budget (64 px, tens of steps) so the whole script runs in
about two minutes on a CPU. Writes ``results.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.large_photo import corrupt
from dip_cli.io import load_image
from dip_cli.metrics import psnr

QUALITY, SIGMA = 20, 25  # the JPEG's quality, the noise's sigma (8-bit units)


@dataclass(frozen=True)
class Sizes:
    side: int  # the end-to-end photo and the precision / stacked tiles
    iters: int | None  # the CLI runs' budget (None: the preset's)
    steps: int  # precision and stacked steps timed
    stacked: tuple[int, ...]
    big: tuple[int, int]  # the "12 MP" photo (width, height)
    big_extra: tuple[str, ...]  # its CLI options beyond the defaults
    architectures: tuple[str, ...]
    slices: dict  # seconds per section


FULL = Sizes(
    side=512,
    iters=None,
    steps=200,
    stacked=(1, 2, 4, 8),
    big=(4000, 3000),
    big_extra=(),
    architectures=("--width", "128", "--iters", "5000"),
    slices={"end to end": 110, "precision": 40, "stacked": 40, "12 MP": 150, "architectures": 120},
)
QUICK = Sizes(
    side=64,
    iters=20,
    steps=5,
    stacked=(1, 2),
    big=(320, 192),
    big_extra=("--iters", "10", "--tile", "128"),
    architectures=("--quick",),
    slices={"end to end": 60, "precision": 20, "stacked": 20, "12 MP": 40, "architectures": 30},
)


def photo(width: int, height: int) -> np.ndarray:
    """Bundled scikit-image photos, 256 px blocks of each in turn, to ``width`` x ``height``; 8-bit
    values. (The GPU machine gets the repository alone, not the data beside it.)"""
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    blocks = [np.asarray(s[:256, :256, :3], np.float32) / 255 for s in sources]
    rows = -(-height // 256)
    cols = -(-width // 256)
    grid = [[blocks[(r * cols + c) % len(blocks)] for c in range(cols)] for r in range(rows)]
    pixels = np.concatenate([np.concatenate(row, axis=1) for row in grid], axis=0)[:height, :width]
    return np.ascontiguousarray(np.round(pixels * 255) / 255)


def jpeg_of(clean: np.ndarray, folder: Path) -> Path:
    return corrupt(clean, "jpeg", folder, QUALITY, SIGMA)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cli(args: list[str], timeout: float) -> tuple[float, int]:
    """``dip ARGS`` in a child process: wall seconds and exit code (-9: killed at ``timeout``)."""
    start = time.perf_counter()
    try:
        code = subprocess.run([sys.executable, "-m", "dip_cli", *args, "--quiet"], timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = -9
    return time.perf_counter() - start, code


# --- sections --------------------------------------------------------------------------------


def end_to_end(sizes: Sizes, device: str, folder: Path, slice_s: float) -> list[dict]:
    clean = photo(sizes.side, sizes.side)
    rows = []
    # A folder each: both inputs are named photo.*, and the run folder beside the output is
    # named after the input.
    inputs = {
        task: corrupt(clean, task, _made(folder / task), QUALITY, SIGMA) for task in ("jpeg", "denoise")
    }
    for task, source in inputs.items():
        output = source.with_name("restored.png")
        extra = ["--iters", str(sizes.iters)] if sizes.iters else []
        seconds, code = cli([task, str(source), "-o", str(output), "--device", device, *extra], slice_s / 2)
        before = psnr(load_image(source).pixels, clean)
        gain = psnr(load_image(output).pixels, clean) - before if code == 0 else float("nan")
        what = f"dip {task}, {sizes.side} px"
        rows.append({"what": what, "seconds": seconds, "exit": code, "gain_db": gain})
    return rows


def precision(sizes: Sizes, device: str, folder: Path, slice_s: float) -> list[dict]:
    """The same JPEG fit, fp32 then bf16 autocast: ms per step (from two budgets, so the set-up
    and the final decode cancel out) and the PSNR after ``steps``."""
    clean = photo(sizes.side, sizes.side)
    source = jpeg_of(clean, folder)
    rows = []
    _jpeg_fit(source, device, "fp32", 1)  # warm-up: imports, allocator, kernel choice
    for mode in ("fp32", "bf16"):
        short_s, _ = _jpeg_fit(source, device, mode, max(1, sizes.steps // 4))
        long_s, restored = _jpeg_fit(source, device, mode, sizes.steps)
        ms = (long_s - short_s) * 1000 / (sizes.steps - max(1, sizes.steps // 4))
        what = f"jpeg fit {sizes.side} px, {mode}"
        after = psnr(restored, clean)
        rows.append({"what": what, "ms_per_step": ms, "psnr_after": after, "steps": sizes.steps})
    return rows


def _jpeg_fit(source: Path, device: str, mode: str, steps: int) -> tuple[float, np.ndarray]:
    from dip_cli.io import Picture
    from dip_cli.options import RunOptions
    from dip_cli.tasks import resolve_settings, restore_picture

    settings = resolve_settings("jpeg", None, iters=steps)
    settings = replace(settings, fit=replace(settings.fit, precision=mode))
    start = time.perf_counter()
    restored, _ = restore_picture(
        "jpeg",
        Picture(load_image(source).pixels),
        settings,
        RunOptions(device=device, tile="off"),
        source=source.read_bytes(),
    )
    return time.perf_counter() - start, restored.pixels


def stacked(sizes: Sizes, device: str, folder: Path, slice_s: float) -> list[dict]:
    """N tiles at once, weights stacked, against the same N one at a time: ms per step per tile."""
    import torch

    from benchmarks.stacked_fits import fit_separately, fit_stacked, make_nets, ms_per_step
    from dip_cli.tasks import resolve_settings

    settings = resolve_settings("jpeg", None)
    target = torch.from_numpy(photo(sizes.side, sizes.side).transpose(2, 0, 1).copy())[None].to(device)
    rows = []
    deadline = time.perf_counter() + slice_s
    for count in sizes.stacked:
        if time.perf_counter() > deadline:
            rows.append({"what": f"{count} tiles", "note": "slice ended"})
            break
        targets = [target] * count
        for name, fit in (("one at a time", fit_separately), ("stacked", fit_stacked)):
            nets, codes = make_nets(settings, count, sizes.side, device)
            ms = ms_per_step(fit, nets, codes, targets, sizes.steps, settings.fit.lr)
            rows.append({"what": f"{count} tiles of {sizes.side} px, {name}", "ms_per_step_per_tile": ms})
    return rows


def big_photo(sizes: Sizes, device: str, folder: Path, slice_s: float) -> list[dict]:
    """``dip jpeg`` on the big photo in a child process that reports its progress; killed at the
    end of the slice, it leaves the ETA."""
    clean = photo(*sizes.big)
    source = jpeg_of(clean, folder)
    report = folder / "big.json"
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=restore_big, args=(str(source), device, sizes.big_extra, str(report)))
    start = time.perf_counter()
    child.start()
    child.join(slice_s)
    if child.is_alive():
        child.terminate()
        child.join()
    state = json.loads(report.read_text()) if report.exists() else {}
    megapixels = sizes.big[0] * sizes.big[1] / 1e6
    row = {"what": f"dip jpeg, {megapixels:.1f} MP", "seconds": time.perf_counter() - start, **state}
    if "pixels" in state:
        restored = np.load(state.pop("pixels"))
        row["gain_db"] = psnr(restored, clean) - psnr(load_image(source).pixels, clean)
        row.pop("pixels", None)
    return [row]


def restore_big(source: str, device: str, extra: tuple[str, ...], report: str) -> None:
    """The child's work: restore through the core, writing done / total / ETA / peak memory to
    ``report`` as it goes, and at the end the result's path."""
    import torch

    from dip_cli.io import Picture
    from dip_cli.options import RunOptions
    from dip_cli.progress import CallbackObserver
    from dip_cli.tasks import resolve_settings, restore_picture

    options = dict(zip(extra[::2], extra[1::2], strict=True))
    settings = resolve_settings("jpeg", None, iters=int(options["--iters"]) if "--iters" in options else None)
    tile = options.get("--tile", "auto")
    start = time.perf_counter()

    def peak_gb() -> float:
        return torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else float("nan")

    def progress(status) -> None:
        elapsed = time.perf_counter() - start
        eta = elapsed * (status.iters / max(status.iteration, 1) - 1)
        state = {"done": status.iteration, "total": status.iters, "eta_s": eta, "peak_gpu_gb": peak_gb()}
        Path(report).write_text(json.dumps(state))

    path = Path(source)
    restored, _ = restore_picture(
        "jpeg",
        Picture(load_image(path).pixels),
        settings,
        source=path.read_bytes(),
        options=RunOptions(device=device, tile=tile, observer=CallbackObserver(progress)),
    )
    pixels = path.with_suffix(".npy")
    np.save(pixels, restored.pixels)
    finished = {"finished": True, "peak_gpu_gb": peak_gb(), "pixels": str(pixels)}
    Path(report).write_text(json.dumps(finished))


def architectures(sizes: Sizes, device: str, folder: Path, slice_s: float) -> list[dict]:
    out = folder / "architectures"
    args = ["experiment", "architectures", *sizes.architectures, "--device", device, "--out", str(out)]
    start = time.perf_counter()
    try:
        child = [sys.executable, "-m", "dip_cli", *args]
        code = subprocess.run(child, timeout=slice_s, stdout=subprocess.DEVNULL).returncode
    except subprocess.TimeoutExpired:
        code = -9
    row = {"what": "architectures " + " ".join(sizes.architectures), "seconds": time.perf_counter() - start}
    if code == 0:
        results = json.loads((out / "results.json").read_text())
        row["verdicts"] = {v["finding"]: v["held"] for v in results["verdicts"]}
        row["best_psnr_db"] = {
            k.split(":")[0]: round(v, 2) for k, v in results["figures"].items() if "best" in k
        }
    else:
        row["exit"] = code
    return [row]


SECTIONS = {
    "end to end": end_to_end,
    "precision": precision,
    "stacked": stacked,
    "12 MP": big_photo,
    "architectures": architectures,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "mps"])
    parser.add_argument("--quick", action="store_true", help="small sizes: ~2 min on a CPU")
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"device": describe(args.device), "quick": args.quick, "sections": {}}
    for name in args.sections:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            try:
                rows = SECTIONS[name](sizes, args.device, Path(tmp), sizes.slices[name])
            except Exception as exc:  # one section's failure must not cost the others their slice
                rows = [{"what": name, "error": f"{type(exc).__name__}: {exc}"}]
            results["sections"][name] = {"seconds": time.perf_counter() - start, "rows": rows}
        print_section(name, results["sections"][name])
        (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


def describe(device: str) -> str:
    import platform

    import torch

    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"{platform.processor() or platform.machine()} ({device}); torch {torch.__version__}"


def print_section(name: str, section: dict) -> None:
    print(f"\n## {name} ({section['seconds']:.0f} s)\n", flush=True)
    for row in section["rows"]:
        figures = {k: v for k, v in row.items() if k != "what"}
        cells = [f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()]
        print(f"- {row['what']}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
