"""The ``dip`` command line: thin Typer commands over ``dip_cli.restore``.

torch is imported only inside commands that need it, so ``dip --help`` and argument errors
answer at once. Errors are one line on stderr with an exit code: 2 bad input or usage,
1 failure while running, 3 a batch in which some images failed (the rest were restored),
130 interrupted by Ctrl-C and 143 by SIGTERM (a checkpoint is saved; rerun with --resume, or
rerun a batch as it was).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from dip_cli.errors import DipError, Interrupted, Terminated, signal_exit_code
from dip_cli.settings import EFFORTS, SR_KERNELS

app = typer.Typer(
    name="dip",
    help=(
        "Restore images with Deep Image Prior: a randomly initialised network is fitted to "
        "the one corrupted image, and its structure reproduces natural image content before "
        "it reproduces noise or artifacts. No training data, no downloads. "
        "More: README.md and docs/ in the repository."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
stderr = Console(stderr=True)
stdout = Console()


class Stop(StrEnum):
    auto = "auto"
    fixed = "fixed"


# The choices come from settings (torch-free), so the CLI and the operator list the same kernels.
Kernel = StrEnum("Kernel", [(name, name) for name in SR_KERNELS])
Effort = StrEnum("Effort", [(name, name) for name in EFFORTS])


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


InputsArg = Annotated[
    list[Path],
    typer.Argument(
        exists=True,
        readable=True,
        show_default=False,
        metavar="PATH",
        help="Images and/or folders of images. Several, or a folder, make a batch.",
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="One image: the output file (default: INPUT.restored.png). A batch: the output folder, "
        "mirroring the input tree (default: beside each input).",
    ),
]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Batch: search subfolders too.")]
GlobOpt = Annotated[
    str | None,
    typer.Option("--glob", help="Batch: only files matching this pattern, e.g. '*.jpg' (case-insensitive)."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        show_default=False,
        help="Batch: images restored at once, each in its own process with its share of the CPU "
        "threads. Default: on a CPU one per core up to 4 (2 one-thread workers restored 1.84x more "
        "128 px images per minute than one two-thread run, on 2 cores); on a GPU 1.",
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS",
        show_default=False,
        help="Batch: run each image as a Ray task. 'local' starts Ray on this machine; 'auto' joins the running cluster (RAY_ADDRESS); 'ray://host:port' a remote one. Inputs and outputs must be on storage every node sees. Needs pip install 'dip-cli\\[ray]'.",
    ),
]
CpusPerImageOpt = Annotated[
    float, typer.Option(min=0.0, help="Batch on Ray: CPUs each image asks for (its torch threads).")
]
GpusPerImageOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        show_default=False,
        help="Batch on Ray: GPUs each image asks for; fractions share one GPU (0.25: four fits at once). Default: 1 where the cluster has GPUs, else 0.",
    ),
]
ReferenceDirOpt = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        file_okay=False,
        help="Batch: folder of clean originals, same relative paths (any image extension): "
        "report PSNR/SSIM against them.",
    ),
]
RunDirOpt = Annotated[
    Path | None,
    typer.Option(help="Run folder for checkpoint, metrics, snapshots (default: STEM.dip beside the output)."),
]
PresetOpt = Annotated[
    str | None,
    typer.Option(help="Preset name (see 'dip presets') or a .toml file (default: the task's name)."),
]
EffortOpt = Annotated[
    Effort,
    typer.Option(
        help="How much time to spend, when no --preset is given: fast runs the task's -fast preset "
        "(about a third of the default's time, some of its gain), default the task's preset, best its "
        "-avg3 preset (independent fits averaged: three times the time or more). Each command's help "
        "and docs/benchmarks.md say what each level gained and took.",
    ),
]
ItersOpt = Annotated[int | None, typer.Option(min=1, help="Iteration budget (default: the preset's).")]
StopOpt = Annotated[
    Stop | None,
    typer.Option(help="auto: stop when the output stops improving (ES-WMV); fixed: run the whole budget."),
]
SeedOpt = Annotated[int, typer.Option(help="Random seed: same seed, same device, same result.")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to compute; auto picks CUDA, then MPS, then CPU.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="CPU threads (default: 1 below 64x64 px, else all cores up to 8). A large photo's tiles "
        "(and an -avg3 preset's fits) are fitted that many at once, one thread each.",
    ),
]
TileOpt = Annotated[
    str,
    typer.Option(
        metavar="auto|off|SIZE",
        help="Large photos: restore overlapping tiles of at most SIZE px, each its own DIP fit, blended seamlessly; memory is bounded by the tile, and the presets' budgets are made for problems of that size. auto: fit up to 512 px a side whole (a 1 MP photo fitted whole is far from done at the end of its budget) and tile anything larger, in tiles of up to 576 px, on a CPU smaller for a network whose fit would need over 0.6 GiB (384 px for inpaint and sr), and at most the preset's [tile] max_side (denoise: 256 px, which its budget fits; larger images than that are tiled). off: always whole.",
    ),
]
SaveEveryOpt = Annotated[
    int, typer.Option(min=1, help="Save a checkpoint and a snapshot every N iterations.")
]
ReferenceOpt = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, help="Clean ground truth: report PSNR and SSIM against it."),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue a killed run from its checkpoint.")]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output and start the run over.")
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress display or summary: errors and warnings only.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


@contextmanager
def _exit_codes(on_interrupt: str) -> Iterator[None]:
    """Turn any failure into one line on stderr and an exit code, never a traceback.

    SIGTERM (docker stop, systemd, SLURM, Ray) is an interrupt like Ctrl-C: inside the fit
    loop it checkpoints at the step boundary; elsewhere it stops at once. Exit 143.
    """
    import signal

    from dip_cli.process import tune_for_fits

    tune_for_fits()  # passive OpenMP waits; freed memory reused, not page-faulted in every step
    previous_warning, warnings.showwarning = warnings.showwarning, _show_warning
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except Interrupted as exc:
        stderr.print(f"[yellow]{escape(str(exc))}[/]. {on_interrupt}")
        raise typer.Exit(exc.exit_code) from None
    except DipError as exc:
        stderr.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        stderr.print("[yellow]interrupted[/]")
        raise typer.Exit(signal_exit_code(exc)) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a bug or an environment failure: one line, not a traceback
        if os.environ.get("DIP_DEBUG"):
            raise
        stderr.print(
            f"[red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))}. This is a bug in dip or a "
            "problem with the environment; rerun with DIP_DEBUG=1 for the traceback and report it.",
            highlight=False,
        )
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        warnings.showwarning = previous_warning


def _raise_terminated(signum, frame):
    raise Terminated


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """dip's warnings (a fallback it took) as one line, not Python's file:line form."""
    stderr.print(f"[yellow]note:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _run(task: str, inputs: list[Path], *, quiet: bool, as_json: bool, **given) -> None:
    """The task commands' one body: their options, by name, to one image or a batch."""
    batch = _BatchChoice(**{name: given.pop(name) for name in _BatchChoice.__dataclass_fields__})
    output = given["output"]
    is_batch = len(inputs) > 1 or inputs[0].is_dir() or (output is not None and output.is_dir())
    code = 0
    with _exit_codes("Run the same command with --resume to continue."):
        request = _request(task, inputs[0], **given)
        if is_batch:
            code = _restore_batch(inputs, request, batch, quiet, as_json)
        else:
            _restore_one(request, batch, quiet, as_json)
    if code:
        raise typer.Exit(code)


@dataclass(frozen=True)
class _BatchChoice:
    """The options only a batch takes."""

    recursive: bool
    glob: str | None
    workers: int | None
    reference_dir: Path | None
    ray: str | None
    cpus_per_image: float
    gpus_per_image: float | None


def _request(task: str, input_path: Path, *, seed, device, threads, save_every, tile, run_dir, resume, overwrite,
             stop, effort, kernel=None, **choices):  # fmt: skip
    """The command line as a ``RestoreRequest``; its ``RunOptions`` check the run options once."""
    from dip_cli.options import RunOptions
    from dip_cli.restore import RestoreRequest

    options = RunOptions(
        seed=seed, device=device.value, threads=threads, save_every=save_every, tile=tile, run_dir=run_dir,
        resume=resume, overwrite=overwrite,
    )  # fmt: skip
    kernel = kernel.value if kernel is not None else "lanczos2"
    stop = stop.value if stop else None
    return RestoreRequest(
        task=task, input=input_path, stop=stop, kernel=kernel, effort=effort.value, options=options, **choices
    )


def _restore_one(request, batch: _BatchChoice, quiet: bool, as_json: bool) -> None:
    from dip_cli.errors import InputError
    from dip_cli.report import ProgressDisplay, results_json, summary_lines
    from dip_cli.restore import restore
    from dip_cli.tasks import jpeg_outlook, preset_name

    if batch.reference_dir is not None:
        raise InputError("--reference-dir is for batches (folders or several images); use --reference")
    if batch.ray is not None:
        raise InputError("--ray is for batches (folders or several images); one image runs here")
    preset = preset_name(request.task, request.preset, request.scale, request.effort)  # conflicts fail here
    if request.task == "jpeg" and not quiet and (outlook := jpeg_outlook(request.input, preset)):
        stderr.print(
            f"[dim]{escape(request.input.name)}: {escape(outlook)}[/]", highlight=False, soft_wrap=True
        )
    result = restore(request.with_options(observer=ProgressDisplay(stderr, enabled=not quiet)))
    if as_json:
        print(results_json([result]))
    if not quiet:
        stderr.print(summary_lines([result]), highlight=False, soft_wrap=True)


def _restore_batch(inputs: list[Path], request, batch: _BatchChoice, quiet: bool, as_json: bool) -> int:
    """Many images: exit 0 if all restored or already done, 3 if some failed, 130 if interrupted."""
    from dataclasses import replace

    from dip_cli.batch import plan_batch, run_batch, write_summary
    from dip_cli.errors import InputError
    from dip_cli.report import BatchDisplay
    from dip_cli.report_html import write_report_html

    if request.options.run_dir is not None:
        raise InputError("--run-dir is for one image; in a batch each run folder sits beside its output")
    if request.reference is not None:
        raise InputError("--reference is for one image; for a batch give --reference-dir FOLDER")
    plan = plan_batch(inputs, output_dir=request.output, recursive=batch.recursive, pattern=batch.glob)
    template = replace(request, input=Path(), output=None).with_options(resume=False)
    report = run_batch(
        plan,
        template,
        reference_dir=batch.reference_dir,
        workers=batch.workers,
        observer=BatchDisplay(stderr, enabled=not quiet),
        ray=_ray_options(batch),
    )
    csv_path, json_path = write_summary(report, plan.summary_dir)
    html_path = write_report_html(report, plan.summary_dir)
    if as_json:
        print(json_path.read_text())
    if not quiet:  # --quiet: errors and warnings only; summary.csv/json hold the rest
        _print_batch_end(report, csv_path, json_path, html_path)
    if report.interrupted:
        stderr.print("[yellow]interrupted[/]: rerun the same command to continue where it stopped.")
    elif report.count("failed"):
        stderr.print(
            f"[red]{report.count('failed')} image(s) failed[/] (exit code 3); the others are restored."
        )
    return report.exit_code


def _print_batch_end(report, csv_path: Path, json_path: Path, html_path: Path) -> None:
    from dip_cli.report import batch_table

    stderr.print(batch_table(report))
    if report.ignored:
        stderr.print(
            f"ignored {len(report.ignored)} file(s) that are not images: "
            + ", ".join(str(p) for p in report.ignored[:5])
            + (" ..." if len(report.ignored) > 5 else ""),
            highlight=False,
            soft_wrap=True,
        )
    stderr.print(
        f"summary: {csv_path}, {json_path.name}; to look at: {html_path}", highlight=False, soft_wrap=True
    )


def _ray_options(batch: _BatchChoice):
    from dip_cli.errors import InputError

    if batch.ray is None:
        if batch.gpus_per_image is not None or batch.cpus_per_image != 1.0:
            raise InputError("--cpus-per-image and --gpus-per-image are for batches on Ray (--ray ADDRESS)")
        return None
    from dip_cli.batch.ray_tasks import RayOptions

    return RayOptions(batch.ray, batch.cpus_per_image, batch.gpus_per_image)


@app.command()
def denoise(
    inputs: InputsArg,
    output: OutputOpt = None,
    preset: PresetOpt = None,
    effort: EffortOpt = Effort("default"),
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    tile: TileOpt = "auto",
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    glob: GlobOpt = None,
    workers: WorkersOpt = None,
    reference_dir: ReferenceDirOpt = None,
    ray: RayOpt = None,
    cpus_per_image: CpusPerImageOpt = 1.0,
    gpus_per_image: GpusPerImageOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove noise from a photo.

    The network reproduces the image before the noise; dip stops automatically (ES-WMV) when its outputs settle, once they differ from the photo by no more than the noise it estimates there, and saves the smoothed output. Good at noise of unknown level or kind: dip needs no noise model. For Gaussian noise of a known level, CBM3D (the bm3d package) is still better and far faster. --effort best (denoise-avg3, three fits averaged) comes closer to it at three times the time; --effort fast caps the budget at 1000 iterations (128 px crops: 50-60 s each for +7.89 dB where the default took 50-173 s for +8.19; texture loses most). Examples:

        dip denoise photo.jpg                 # -> photo.restored.png

        dip denoise photo.jpg --effort best

        dip denoise photo.jpg --reference clean.png --json

    More: docs/benchmarks.md (quality) and docs/large-photos.md (photos over 256 px).
    """
    _run("denoise", **locals())  # every option, by name


@app.command()
def jpeg(
    inputs: InputsArg,
    output: OutputOpt = None,
    preset: PresetOpt = None,
    effort: EffortOpt = Effort("default"),
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    tile: TileOpt = "auto",
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    glob: GlobOpt = None,
    workers: WorkersOpt = None,
    reference_dir: ReferenceDirOpt = None,
    ray: RayOpt = None,
    cpus_per_image: CpusPerImageOpt = 1.0,
    gpus_per_image: GpusPerImageOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove JPEG artifacts (blocks, ringing) from a compressed photo.

    For a JPEG file dip reads what the file holds (its DCT coefficients, quantization tables and chroma subsampling) and fits the network so that its output, compressed the way the file was, gives those coefficients; chroma is compared at its stored resolution. The result is the mean of that fit, a classical decode of the file (total variation lowered inside the file's quantization box) and the plain decode, moved into the box. dip says the file's quality and what to expect at it. On photo crops at qualities 10-75 it gained more over the JPEG on average than jpeg2png and jpegqs, and made none worse; those take a second where dip takes a minute or more, and jpeg2png is ahead on smooth areas at quality 10. A PNG of a decoded JPEG is fitted pixel by pixel instead (less gain; dip says so). Time: a 1 MP photo (quality 10) took 7.9 min with --effort fast for +0.84 dB, and about three times that with the default for +1.15 dB (2 cores of an AVX-512 CPU); --effort best (jpeg-avg3) averages three fits from independent seeds, at three times the default's time. Examples:

        dip jpeg scan.jpg -o scan.clean.png

        dip jpeg scan.jpg --effort best       # three fits averaged: three times the time

        dip jpeg scans/ -r -o clean/ --effort fast   # a folder tree; rerun to resume, exit 3 if some failed

    More: docs/jpeg.md.
    """
    _run("jpeg", **locals())  # every option, by name


@app.command()
def inpaint(
    inputs: InputsArg,
    mask: Annotated[
        str,
        typer.Option(
            help="Mask image, same size: white/non-zero = keep, black = fill (thresholded at 50%). "
            "Or 'alpha' to fill the image's transparent pixels.",
        ),
    ],
    invert_mask: Annotated[bool, typer.Option("--invert-mask", help="Swap keep and fill.")] = False,
    output: OutputOpt = None,
    preset: PresetOpt = None,
    effort: EffortOpt = Effort("default"),
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    tile: TileOpt = "auto",
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    glob: GlobOpt = None,
    workers: WorkersOpt = None,
    reference_dir: ReferenceDirOpt = None,
    ray: RayOpt = None,
    cpus_per_image: CpusPerImageOpt = 1.0,
    gpus_per_image: GpusPerImageOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fill in missing pixels (text, scratches, holes) marked by a mask.

    The loss sees only the kept pixels; the network's structure invents the rest. Kept pixels are copied to the output unchanged; each hole pixel is three parts the network's fill and one part a biharmonic fill (photo crops with scratches: +1.0 dB over biharmonic alone on average; the network alone +0.7, and further behind it on smooth areas). Good at text, scratches and scattered missing pixels (well above biharmonic inpainting); large holes come out smooth and plausible rather than detailed. --effort fast runs a third of the iterations (photo crops with scratches: 70% of the gain over biharmonic, in a third of the time); --effort best averages three fits (not measured). Example:

        dip inpaint photo.png --mask scratches.png

    More: docs/how-it-works.md (masks) and docs/benchmarks.md (quality).
    """
    if mask != "alpha" and not Path(mask).exists():
        stderr.print(
            f"[red]error:[/] mask {escape(str(mask))} does not exist (give a mask image, or 'alpha')",
            highlight=False,
        )
        raise typer.Exit(2)
    _run("inpaint", **locals())  # every option, by name


@app.command()
def sr(
    inputs: InputsArg,
    scale: Annotated[int, typer.Option(help="Upscaling factor: 2, 4 or 8.")] = 4,
    kernel: Annotated[
        Kernel,
        typer.Option(
            help="How the input was made smaller, if you know: lanczos2 (the paper's), or the antialiased "
            "bicubic, lanczos3 or area (box) resize of Pillow, OpenCV or an image editor. The fit compares "
            "the input with the result made smaller that way: for an area reduction +0.3 dB on average here; "
            "for bicubic the default does as well."
        ),
    ] = Kernel("lanczos2"),
    output: OutputOpt = None,
    preset: PresetOpt = None,
    effort: EffortOpt = Effort("default"),
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    tile: TileOpt = "auto",
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    glob: GlobOpt = None,
    workers: WorkersOpt = None,
    reference_dir: ReferenceDirOpt = None,
    ray: RayOpt = None,
    cpus_per_image: CpusPerImageOpt = 1.0,
    gpus_per_image: GpusPerImageOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Super-resolve an image: the output is SCALE times larger.

    The network's output, passed through a fixed antialiasing downsampler (the paper's Lanczos-2, or with --kernel the resize your image was made with), is fitted to the input; the network's structure supplies the missing detail. Good at edges, lines and smooth shading, well above bicubic there; it cannot bring back texture finer than the input's pixels (fur, fine stripes), where it is only level with bicubic. Presets sr4 (default), sr2 and sr8 (used for --scale 2 and 8); --effort best (sr4-avg3 at x4), three fits of 4000 iterations averaged: about +0.3 dB and a little more of the fur, at six times the time; --effort fast, a third of the iterations, is for a quick look only (at x4 it fell 0.32 dB below bicubic on average); and the paper's sr4-paper / sr8-paper. Examples:

        dip sr small.png --scale 4            # -> small.restored.png, 4x the size

        dip sr thumb.png --kernel area        # made smaller by averaging pixels (box)

        dip sr small.png --effort best        # best quality, six times the time

    More: docs/benchmarks.md (quality) and docs/how-it-works.md (kernels).
    """
    _run("sr", **locals())  # every option, by name


@app.command()
def presets() -> None:
    """List the built-in presets and their settings (models/*.toml).

    More: docs/how-it-works.md (preset files) and README.md (the preset table).
    """
    from rich.table import Table

    from dip_cli.presets import all_presets
    from dip_cli.settings import AUTO_TILE

    table = Table(title="dip presets (use --preset NAME, or a .toml file of your own)", show_lines=True)
    for column in ("name", "network and settings", "description"):
        table.add_column(column, no_wrap=column == "name")
    for p in all_presets():
        options = " ".join(
            f"{key} [{','.join(map(str, value))}]" if isinstance(value, list | tuple) else f"{key} {value}"
            for key, value in p.network.options.items()
            if key != "channels_up"
        )
        settings = (
            f"{p.network.kind}: {options}\n"
            f"z: {p.input.kind} x{p.input.depth}; {p.fit.iters} it, lr {p.fit.lr:g}, "
            f"EMA {p.fit.ema:g}; stop {p.stop.rule}"
            + (f"; {p.fit.restarts} fits averaged" if p.fit.restarts > 1 else "")
            + (f"; tiles <= {p.tile.max_side} px" if p.tile.max_side < AUTO_TILE else "")
        )
        table.add_row(f"{p.name}\n({p.task})", settings, p.description)
    stdout.print(table)


# --- dip experiment: why does it work? -------------------------------------------------------

experiment_app = typer.Typer(
    help=(
        "Reproduce the evidence that DIP's prior is in the network's structure, not in data. "
        "Each command prints its measured figures and a verdict per finding (held / not held, "
        "computed from the data), and writes results.json, a CSV and a PNG plot under --out. "
        "Exit 0 whatever the verdicts; with --strict, 1 when a finding does not hold. "
        "More: docs/experiments.md."
    ),
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")

ImageOpt = Annotated[
    str | None,
    typer.Option(
        help="An image file, or a scikit-image bundled image: astronaut (default), camera, chelsea, coffee, …"
    ),
]
SizeOpt = Annotated[
    int | None, typer.Option(help="Side of the square centre crop, in pixels (default: see above).")
]
ExpItersOpt = Annotated[int | None, typer.Option(min=1, help="Iterations per fit.")]
ExpSeedOpt = Annotated[int | None, typer.Option(help="Random seed (weights, code z, noise). Default 0.")]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        file_okay=False,
        help="Folder for results.json, the CSV and the plot (default: experiments/NAME/ here).",
    ),
]
QuickOpt = Annotated[bool, typer.Option("--quick", help="A small version that runs in seconds (for tests).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 1 when a finding does not hold.")]


def _experiment(name: str, quick: bool, strict: bool, **given) -> None:
    """Shared body of the experiment commands: run, print figures and verdicts, map errors."""
    with _exit_codes("Experiments are short; run the command again."):
        from dip_cli.experiments import load, make_config
        from dip_cli.experiments.display import ProgressBar, figures_table, verdicts_table

        config = make_config(name, quick=quick, **given)
        with ProgressBar(stderr) as bar:
            result = load(name).run(config, progress=bar.update)
    stdout.print(figures_table(result), verdicts_table(result))
    stdout.print(f"wrote {', '.join(str(p) for p in result.paths.values())}", highlight=False)
    if strict and not result.all_held:
        raise typer.Exit(1)


@experiment_app.command("fit-curves")
def fit_curves(
    image: ImageOpt = None,
    size: SizeOpt = None,
    iters: ExpItersOpt = None,
    jitter: Annotated[
        float | None,
        typer.Option(help="σ_p of the DIP net's input jitter (default 1/30, the paper's; 0 = none)."),
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """An untrained net fits a natural image fast and noise slowly (DIP, Fig. 2).

    The same skip net, code and seed are fitted to the image, the image + noise (σ=25), its pixels permuted, and uniform noise; a per-pixel MLP of 1x1 convs, fitted to the image and its permutation, is the control with no spatial prior. Reports FVU = MSE / var(target) curves; the verdicts are relative (iterations to converge, image vs the rest). Defaults: 128 px (as many weights per image value as the paper's net on a 512 px image), 3000 iterations per fit, 6 fits.
    """
    _experiment(
        "fit-curves",
        quick,
        strict,
        image=image,
        size=size,
        iters=iters,
        jitter=jitter,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("random-labels")
def random_labels(
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Most epochs per run (a run stops once it fits). Default 400.")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(min=1, help="Seeds per setting; figures are medians. Default 3.")
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default 1: the nets are tiny).")
    ] = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Nets memorise random labels, and generalise only when data has structure (Zhang et al. 2017).

    An MLP (1x512) and a small CNN trained with SGD on scikit-learn's digits (1347 / 450 split): true labels, random labels, shuffled / random / Gaussian pixels, labels corrupted with p = 0.2 … 0.8, and true labels with weight decay. Reports epochs to 100% train accuracy and test accuracy, medians over seeds. Defaults: at most 400 epochs per run, 3 seeds; measured: 509 s on 2 CPU cores.
    """
    _experiment(
        "random-labels",
        quick,
        strict,
        epochs=epochs,
        seeds=seeds,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("architectures")
def architectures(
    image: ImageOpt = None,
    mask: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Holes to fill (white = known, black = hole), cropped like the image. Default: a fixed wide "
            "band and blob, 26% of the image, wider than a shallow net's receptive field.",
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="inpaint (default: the paper's setting) or denoise (the second result: σ=25, seven networks)."
        ),
    ] = None,
    size: SizeOpt = None,
    iters: ExpItersOpt = None,
    width: Annotated[
        int | None,
        typer.Option(
            help="Channels per level of the hourglasses (default 32; the paper's 128, with --iters 5000, "
            "is a GPU's job). The U-Net and ResNet get the width that matches the 6-level hourglass's "
            "parameter count.",
        ),
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Which networks carry the prior? Fill large holes with different depths and architectures (DIP).

    The paper's setting: hourglasses (encoder-decoders without skips) of depth 2, 4 and 6, a U-Net and a ResNet at the same parameter count, fitted to the known pixels with the large-hole recipe (meshgrid input, jitter 0.03, no EMA). Reports PSNR inside the holes; biharmonic inpainting is a classical reference. Findings: deeper is much better; skip connections (ResNet, U-Net) hurt. Defaults: 128 px, 1500 iterations per network. --task denoise runs the earlier denoising comparison (64 px).
    """
    _experiment(
        "architectures",
        quick,
        strict,
        image=image,
        mask=str(mask) if mask else None,
        task=task,
        size=size,
        iters=iters,
        width=width,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("jpeg-timeline")
def jpeg_timeline(
    image: ImageOpt = None,
    size: SizeOpt = None,
    iters: ExpItersOpt = None,
    quality: Annotated[int | None, typer.Option(help="JPEG quality 1-95 (default 10).")] = None,
    jitter: Annotated[
        float | None,
        typer.Option(help="σ_p of the net's input jitter (default 1/30, the paper's; 0 = none)."),
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Fitting a JPEG, the net passes the clean image before it learns the blocks (DIP, Fig. 3).

    The paper's JPEG recipe (its small skip net, jitter 1/30, EMA 0.99) fitted to the decoded JPEG only; PSNR against the clean original is tracked, and snapshots before, at and after the best are shown in a strip. Beside it, the same net fitted to the file's own DCT coefficients (dip jpeg's file model), reported as data. Defaults: 64 px, quality 10, 20000 iterations per fit.
    """
    _experiment(
        "jpeg-timeline",
        quick,
        strict,
        image=image,
        size=size,
        iters=iters,
        quality=quality,
        jitter=jitter,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("random-weights")
def random_weights(
    image: ImageOpt = None,
    size: SizeOpt = None,
    iters: ExpItersOpt = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """An untrained random conv net's features suffice to invert an image (He, Wang & Hopcroft 2016).

    Pixels are optimised from noise to match a random VGG-like net's features at conv depth 1, 2, 4, 6, 8; PSNR against the image should fall with depth. Defaults: 64 px, 500 iterations per depth; measured: 22 s on 2 CPU cores.
    """
    _experiment(
        "random-weights",
        quick,
        strict,
        image=image,
        size=size,
        iters=iters,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("loss-surface")
def loss_surface(
    width: Annotated[
        list[int] | None,
        typer.Option(
            "--width",
            min=1,
            help="A hidden-layer width; repeat for several (at least two). Default 2 4 8 16 32 64 128 256.",
        ),
    ] = None,
    inits: Annotated[
        int | None, typer.Option(min=2, help="Random initialisations per width. Default 100.")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Epochs per net, the same for all (the learning rate reaches 0 at the last). Default 100.",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="digits (default) or breast-cancer (30 standardised features, 2 classes, 426 / 143 split)."
        ),
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default 1: the nets are tiny).")
    ] = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """The wider the net, the narrower the band of losses its minima share (Choromanska et al. 2015).

    One-hidden-layer ReLU nets (64 -> H -> 10, cross-entropy) on scikit-learn's digits (1347 / 450 split), 100 random initialisations per width H, all trained alike: SGD with momentum 0.9, batch 64 in one order shared by every net, lr 0.05 annealed to 0 along a cosine, no regulariser. The nets of a width train at once as stacked weights. Reports per width the median and the spread (p95 - p5) of the final train and test losses, and plots their histograms. Findings: the spread at the largest width is at most a third of the smallest's; its median test loss is lower. Defaults: widths 2 … 256, 100 inits, 100 epochs; measured: 121 s on one core of a 2-core CPU.
    """
    _experiment(
        "loss-surface",
        quick,
        strict,
        widths=tuple(width) if width else None,
        inits=inits,
        epochs=epochs,
        data=data,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("optimizers")
def optimizers(
    epochs: Annotated[
        int | None,
        typer.Option(
            min=4, help="Epochs for every optimizer; the switch comes after 75% of them. Default 100."
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(min=1, help="Seeds (initialisation and batch order); figures are medians. Default 5."),
    ] = None,
    points: Annotated[
        int | None, typer.Option(min=3, help="Points α on each straight path, ends included. Default 41.")
    ] = None,
    grid: Annotated[
        int | None, typer.Option(min=3, help="The 2-D slice is GRID x GRID points. Default 25.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="digits (default) or breast-cancer (scikit-learn's, 30 standardised features)."),
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default 1: the nets are tiny).")
    ] = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Different optimizers from one initialisation end in different minima, yet test alike (Im, Tao & Branson 2016).

    A ReLU MLP 64-128-128-10 on scikit-learn's digits (1347 / 450 split), trained from ONE shared initialisation on the same mini-batches (batch 32) by SGD (lr 0.1), SGD+momentum 0.9 (lr 0.01), Adam (lr 0.001) and RMSprop (lr 0.001), and by Adam switched to SGD+momentum after 75% of the epochs. Reports the training loss along the straight line between solutions (SGD–Adam, SGD+momentum–RMSprop, Adam–RMSprop, and the switched net vs Adam alone), its barrier above the higher end, the test accuracies, and a 2-D slice through the SGD, Adam and RMSprop solutions. Figures are medians over seeds. Defaults: 100 epochs, 5 seeds; measured: 46 s on one core of a 2-core CPU.
    """
    _experiment(
        "optimizers",
        quick,
        strict,
        epochs=epochs,
        seeds=seeds,
        points=points,
        grid=grid,
        data=data,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("sharpness")
def sharpness(
    data: Annotated[
        str | None,
        typer.Option(help="digits (default: 1347 / 450 split) or breast-cancer (standardised, 426 / 143)."),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Most epochs per run (a run stops at training loss 0.01). Default 1000."),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(min=1, help="Seeds per batch size; figures are medians. Default 3.")
    ] = None,
    width: Annotated[
        int | None, typer.Option(min=1, help="Units in each of the MLP's two hidden layers. Default 256.")
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default 1: the nets are tiny).")
    ] = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Large batches find sharper minima and generalise worse (Keskar et al. 2017); yet a rescaled net computes the same function at any sharpness (Dinh et al. 2017).

    An MLP (in-256-256-classes, ReLU) trained with Adam (lr 1e-3) on scikit-learn's digits, batch 32 against the whole training set (1347), from the same initial weights, both until the training cross-entropy is <= 0.01. Reports the Hessian's top eigenvalue (power iteration on Hessian-vector products; the verdict's measure), Keskar's ε-sharpness (ε = 1e-3) and test accuracy, medians over seeds; then the first small-batch net rescaled (layer 1 × α, layer 2 ÷ α, α = 0.1 … 10): every output checked unchanged, sharpness re-measured. Defaults: digits, 3 seeds, at most 1000 epochs; measured: 23 s on one core of a 2-core CPU.
    """
    _experiment(
        "sharpness",
        quick,
        strict,
        data=data,
        epochs=epochs,
        seeds=seeds,
        width=width,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("information-plane")
def information_plane(
    data: Annotated[
        str | None,
        typer.Option(
            help="bits12 (default: all 4096 12-bit inputs, the papers' kind of task) or digits (scikit-learn's 8x8 digits, a 64-32-24-16-12-8-10 net)."
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs (default 5000; the papers' 10000).")
    ] = None,
    snapshots: Annotated[
        int | None,
        typer.Option(
            min=2, help="Log-spaced epochs at which the information is measured (default 80, plus the start)."
        ),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(min=1, help="Nets per activation; figures are medians. Default 3.")
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default 1: the nets are tiny).")
    ] = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Tanh layers compress in the information plane; ReLU layers do not (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018).

    A narrowing MLP 12-10-7-5-4-3-2 on all 4096 12-bit inputs, labelled by a fixed rotation-invariant rule (balanced), 80% train; tanh and ReLU nets from the same initial weights, Adam lr 0.0004, batch 256 (the papers' code). Each hidden layer's activations are binned into 30 equal bins (tanh over [-1, 1], ReLU over [0, its largest value over training]) and I(X;T) = H(T), I(T;Y) = H(T) - H(T|Y) measured over all inputs at log-spaced epochs. Findings: the tanh net's last hidden layer ends >= 10% below its peak I(X;T); the ReLU net's at most 5%; ReLU's test accuracy within 2 points of tanh's. Defaults: 5000 epochs, 80 snapshots, 3 seeds; measured: 96 s on one core of a 2-core CPU.
    """
    _experiment(
        "information-plane",
        quick,
        strict,
        data=data,
        epochs=epochs,
        snapshots=snapshots,
        seeds=seeds,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


@experiment_app.command("random-features")
def random_features(
    data: Annotated[
        str | None,
        typer.Option(
            help="shifted (default: each 8x8 digit pasted at a random place in a blank 16x16 canvas) "
            "or digits (the plain 8x8 images, where a linear model on pixels already does ~96%)."
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs of Adam for the trained CNN. Default 30.")
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1, help="Seeds (random filters, CNN init, batch order); figures are medians. Default 5."
        ),
    ] = None,
    seed: ExpSeedOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default 1: the nets are tiny).")
    ] = None,
    quick: QuickOpt = False,
    strict: StrictOpt = False,
) -> None:
    """A linear classifier on an untrained random conv net's features nears a trained CNN (Zhang et al. 2017; Saxe et al. 2011).

    One random conv layer (K filters of 5x5, PyTorch's default init) + ReLU + max pooling to 4x4 gives 16K features, K = 16 … 256 (256 … 4096 features, nested). The same classifier, L2 logistic regression (C = 1) on standardised features, is fitted on them and on the raw pixels; the trained CNN is the same net with 256 filters and a linear layer, trained end to end from the same weights with Adam (lr 1e-3, batch 32). scikit-learn's digits (1347 / 450 split), each pasted at a random position in a 16x16 canvas so pixels alone cannot do it. Defaults: 30 epochs, 5 seeds; measured: 143 s on one core of a 2-core CPU.
    """
    _experiment(
        "random-features",
        quick,
        strict,
        data=data,
        epochs=epochs,
        seeds=seeds,
        seed=seed,
        out=out,
        device=device.value,
        threads=threads,
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
