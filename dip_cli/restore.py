"""Restore one image file: the file layer over ``tasks.restore_picture`` (and so the core).

It reads the input (and mask, and reference), checks every output path before any work, names
the run folder (``<stem>.dip/`` beside the output unless ``options.run_dir`` is given; the core
opens it for checkpoints and resume), and writes the result atomically. Nothing here knows of
Typer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dip_cli.errors import InputError
from dip_cli.io import Picture, check_output_path, load_image, load_mask, mask_from_alpha, save_image
from dip_cli.options import RunOptions
from dip_cli.provenance import Record
from dip_cli.run_folder import RunFolder
from dip_cli.settings import Settings
from dip_cli.tasks import check_kernel, check_settings, resolve_settings, restore_picture

MASK_FROM_ALPHA = "alpha"


@dataclass(frozen=True)
class RestoreRequest:
    """One image file to restore: what to fit (the task, its preset and overrides, the mask, the
    scale) and how to run it (``options``: seed, device, the run folder, resume...)."""

    task: str
    input: Path
    output: Path | None = None  # default: STEM.restored.png beside the input
    preset: str | None = None
    effort: str = "default"  # which of the task's built-in presets, when no preset is named
    iters: int | None = None
    stop: str | None = None
    mask: str | None = None  # a path, or "alpha"
    invert_mask: bool = False
    scale: int | None = None  # super-resolution factor
    kernel: str = "lanczos2"  # the kernel the super-resolution input was made with
    reference: Path | None = None
    options: RunOptions = field(default_factory=RunOptions)  # run_dir None: STEM.dip beside the output

    @property
    def mask_path(self) -> Path | None:
        return None if self.mask in (None, MASK_FROM_ALPHA) else Path(self.mask)

    def with_options(self, **changes) -> RestoreRequest:
        return replace(self, options=self.options.replace(**changes))


@dataclass
class RestoreResult:
    input: Path
    output: Path
    run_dir: Path
    preset: str
    record: Record

    def as_dict(self) -> dict:
        """JSON-ready: paths as strings, the record's figures flattened in."""
        paths = {"input": str(self.input), "output": str(self.output), "run_dir": str(self.run_dir)}
        return {**paths, "preset": self.preset, **self.record.as_dict()}


def default_output(input_path: Path) -> Path:
    return input_path.with_name(f"{input_path.stem}.restored.png")


def check_request(request: RestoreRequest) -> Settings:
    """What would fail for every image of a batch fails here, once: preset, options, device."""
    from dip_cli import resources

    check_kernel(request.kernel)
    settings = resolve_settings(
        request.task,
        request.preset,
        iters=request.iters,
        stop=request.stop,
        scale=request.scale,
        effort=request.effort,
    )
    check_settings(settings)
    resources.resolve_device(request.options.device)
    return settings


def restore(request: RestoreRequest) -> RestoreResult:
    """Run DIP on one image as ``request`` says; return where the result went and how it went.
    Progress goes to ``request.options.observer``."""
    settings = check_request(request)
    output = request.output or default_output(request.input)
    options = request.options
    if options.run_dir is None:
        options = options.replace(run_dir=output.parent / f"{request.input.stem}.dip")
    _check_paths(request, output, options)

    picture = load_image(request.input)
    known = _load_known(request, picture)
    if request.mask == MASK_FROM_ALPHA:
        picture = replace(picture, alpha=None)  # the transparent part gets filled: the result is opaque
    scale = request.scale or 1
    reference = (
        _load_reference(request.reference, picture.height * scale, picture.width * scale, picture.channels)
        if request.reference
        else None
    )
    info = {
        "input": str(request.input),
        "mask": request.mask,
        "invert_mask": request.invert_mask,
        "reference": None if request.reference is None else str(request.reference),
        "output": str(output),
        "bit_depth": picture.bit_depth,
    }
    restored, record = restore_picture(
        request.task, picture, settings, options.replace(name=request.input.name), known=known,
        scale=request.scale, kernel=request.kernel, source=request.input, reference=reference, info=info,
    )  # fmt: skip
    save_image(output, restored)
    return RestoreResult(request.input, output, options.run_dir, settings.name, record)


def _check_paths(request: RestoreRequest, output: Path, options: RunOptions) -> None:
    """Before any work: the output is never an input (also through a link), a folder, or
    silently replaced, and it and the run folder can be written."""
    for path in filter(None, (request.input, request.reference, request.mask_path)):
        same = output.exists() and path.exists() and output.samefile(path)
        if same or output.resolve() == path.resolve():
            raise InputError(f"the output {output} is an input file; dip never overwrites its inputs")
    if output.is_dir():
        raise InputError(f"the output {output} is a folder; give a file name such as {output / 'out.png'}")
    check_output_path(output, "the output", image=True)
    if output.exists() and not options.overwrite:
        raise InputError(f"{output} already exists; pass --overwrite to replace it or -o to write elsewhere")
    RunFolder(options.run_dir).check()


def _load_known(request: RestoreRequest, picture: Picture) -> np.ndarray | None:
    if request.mask is None:
        return None  # the inpaint task refuses to run without one
    if request.mask == MASK_FROM_ALPHA:
        return mask_from_alpha(picture, invert=request.invert_mask)
    return load_mask(request.mask, picture.height, picture.width, invert=request.invert_mask)


def _load_reference(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    reference = load_image(path)
    if (reference.height, reference.width) != (height, width):
        raise InputError(
            f"reference {path} is {reference.width}x{reference.height} but the output is "
            f"{width}x{height}; they must have the same size"
        )
    if reference.channels != channels:
        raise InputError(
            f"reference {path} has {reference.channels} channel(s) and the image {channels}; "
            "compare grayscale with grayscale and colour with colour"
        )
    return reference.pixels
