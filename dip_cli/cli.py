"""The ``dip`` command line: thin Typer commands over ``dip_cli.restore``.

torch is imported only inside commands that need it, so ``dip --help`` and argument errors
answer at once. Errors are one line on stderr with an exit code: 2 bad input or usage,
1 failure while running, 130 interrupted (a checkpoint is saved; rerun with --resume).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dip_cli.errors import DipError, Interrupted

app = typer.Typer(
    name="dip",
    help=(
        "Restore images with Deep Image Prior: a randomly initialised network is fitted to "
        "the one corrupted image, and its structure reproduces natural image content before "
        "it reproduces noise or artifacts. No training data, no downloads."
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


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


InputArg = Annotated[
    Path,
    typer.Argument(exists=True, dir_okay=False, readable=True, help="The image to restore."),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Where to write the result (default: INPUT.restored.png).", dir_okay=False
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
ItersOpt = Annotated[int | None, typer.Option(min=1, help="Iteration budget (default: the preset's).")]
StopOpt = Annotated[
    Stop | None,
    typer.Option(help="auto: stop when the output stops improving (ES-WMV); fixed: run the whole budget."),
]
SeedOpt = Annotated[int, typer.Option(help="Random seed: same seed, same device, same result.")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to compute; auto picks CUDA, then MPS, then CPU.")]
ThreadsOpt = Annotated[
    int | None, typer.Option(min=1, help="CPU threads (default: 1 below 64x64 px, else all cores up to 8).")
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
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _run(task: str, input_path: Path, quiet: bool, as_json: bool, **options) -> None:
    """Shared body of the task commands: restore, report, map errors to exit codes."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see DESIGN §7: spin-waits stall on busy CPUs
    try:
        from dip_cli.report import ProgressDisplay, results_json, summary_table
        from dip_cli.restore import RestoreRequest, restore

        request = RestoreRequest(task=task, input=input_path, **options)
        display = ProgressDisplay(stderr, enabled=not quiet)
        result = restore(request, display)
    except Interrupted as exc:
        stderr.print(f"[yellow]{exc}[/]. Run the same command with --resume to continue.")
        raise typer.Exit(exc.exit_code) from None
    except DipError as exc:
        stderr.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as exc:  # a bug or an environment failure: one line, not a traceback
        if os.environ.get("DIP_DEBUG"):
            raise
        stderr.print(
            f"[red]error:[/] unexpected {type(exc).__name__}: {exc}. This is a bug in dip or a "
            "problem with the environment; rerun with DIP_DEBUG=1 for the traceback and report it.",
            highlight=False,
        )
        raise typer.Exit(1) from None
    if as_json:
        print(results_json([result]))
    if not quiet:
        stderr.print(summary_table([result]))


def _common(
    output, run_dir, preset, iters, stop, seed, device, threads, save_every, reference, resume, overwrite
) -> dict:
    return {
        "output": output,
        "run_dir": run_dir,
        "preset": preset,
        "iters": iters,
        "stop": stop.value if stop else None,
        "seed": seed,
        "device": device.value,
        "threads": threads,
        "save_every": save_every,
        "reference": reference,
        "resume": resume,
        "overwrite": overwrite,
    }


@app.command()
def denoise(
    input_path: InputArg,
    output: OutputOpt = None,
    preset: PresetOpt = None,
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove noise from a photo.

    The network reproduces the image before the noise; dip stops automatically (ES-WMV) when its outputs settle, and saves the smoothed output. Examples:

        dip denoise photo.jpg                 # -> photo.restored.png

        dip denoise photo.jpg --reference clean.png --json
    """
    _run(
        "denoise",
        input_path,
        quiet,
        as_json,
        **_common(
            output,
            run_dir,
            preset,
            iters,
            stop,
            seed,
            device,
            threads,
            save_every,
            reference,
            resume,
            overwrite,
        ),
    )


@app.command()
def jpeg(
    input_path: InputArg,
    output: OutputOpt = None,
    preset: PresetOpt = None,
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove JPEG artifacts (blocks, ringing) from a compressed photo.

    The network fits the clean image long before it fits the 8x8 blocks, and the default JPEG network plateaus before it relearns them. Example:

        dip jpeg scan.jpg -o scan.clean.png
    """
    _run(
        "jpeg",
        input_path,
        quiet,
        as_json,
        **_common(
            output,
            run_dir,
            preset,
            iters,
            stop,
            seed,
            device,
            threads,
            save_every,
            reference,
            resume,
            overwrite,
        ),
    )


@app.command()
def inpaint(
    input_path: InputArg,
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
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fill in missing pixels (text, scratches, holes) marked by a mask.

    The loss sees only the kept pixels; the network's structure invents the rest. Kept pixels are copied to the output unchanged. Example:

        dip inpaint photo.png --mask scratches.png
    """
    if mask != "alpha" and not Path(mask).exists():
        stderr.print(
            f"[red]error:[/] mask {mask} does not exist (give a mask image, or 'alpha')", highlight=False
        )
        raise typer.Exit(2)
    _run(
        "inpaint",
        input_path,
        quiet,
        as_json,
        mask=mask,
        invert_mask=invert_mask,
        **_common(
            output,
            run_dir,
            preset,
            iters,
            stop,
            seed,
            device,
            threads,
            save_every,
            reference,
            resume,
            overwrite,
        ),
    )


@app.command()
def sr(
    input_path: InputArg,
    scale: Annotated[int, typer.Option(help="Upscaling factor: 2, 4 or 8.")] = 4,
    output: OutputOpt = None,
    preset: PresetOpt = None,
    iters: ItersOpt = None,
    stop: StopOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    save_every: SaveEveryOpt = 500,
    reference: ReferenceOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Super-resolve an image: the output is SCALE times larger.

    The network's output, passed through a fixed Lanczos antialiasing downsampler, is fitted to the input; the network's structure supplies the missing detail. Presets sr4 (default) and sr8 (used for --scale 8), and the paper's sr4-paper / sr8-paper. Example:

        dip sr small.png --scale 4            # -> small.restored.png, 4x the size
    """
    _run(
        "sr",
        input_path,
        quiet,
        as_json,
        scale=scale,
        **_common(
            output,
            run_dir,
            preset,
            iters,
            stop,
            seed,
            device,
            threads,
            save_every,
            reference,
            resume,
            overwrite,
        ),
    )


@app.command()
def presets() -> None:
    """List the built-in presets and their settings (models/*.toml)."""
    from rich.table import Table

    from dip_cli.presets import all_presets

    table = Table(title="dip presets (use --preset NAME, or a .toml file of your own)", show_lines=True)
    for column in ("name", "network and settings", "description"):
        table.add_column(column, no_wrap=column == "name")
    for p in all_presets():
        channels = ",".join(str(c) for c in p.channels_down)
        skips = ",".join(str(c) for c in p.channels_skip)
        settings = (
            f"{p.network} [{channels}] skip [{skips}] {p.upsample}\n"
            f"z: {p.input_kind} x{p.input_depth}; {p.iters} it, lr {p.lr:g}, "
            f"EMA {p.ema:g}; stop {p.stop_rule}"
        )
        table.add_row(f"{p.name}\n({p.task})", settings, p.description)
    stdout.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
