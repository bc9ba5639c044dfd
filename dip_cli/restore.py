"""Restore one image: file in, file out, with a run folder that makes the run resumable.

The one-way flow: io (load, validate) -> operator (what degraded it) -> network(z) -> fit ->
io (save) + run folder. Batch runs and the CLI call ``restore``; nothing here knows of Typer.

Run folder (``<stem>.dip/`` beside the output unless ``run_dir`` is given)::

    checkpoint.pt     everything to continue bit-for-bit (atomic writes)
    metrics.csv       one row per iteration: loss, PSNR vs input, ES-WMV statistic, PSNR vs ref
    run.json          resolved settings, versions, device, seed, times, stop reason, result
    snapshots/        the smoothed output every ``save_every`` iterations
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from dip_cli import __version__
from dip_cli import device as devices
from dip_cli.checkpoint import load_checkpoint, save_checkpoint
from dip_cli.errors import InputError, Interrupted
from dip_cli.fit import METRIC_COLUMNS, FitResult, FitSettings, Hooks, Problem, Status, fit
from dip_cli.io import Picture, load_image, load_mask, mask_from_alpha, save_image, write_text_atomic
from dip_cli.metrics import psnr, psnr_from_mse, ssim
from dip_cli.networks import build_network, count_parameters, make_input, size_multiple
from dip_cli.operators import Downsample, Identity, Mask, Operator
from dip_cli.presets import Preset, load_preset

TASK_DEFAULT_PRESET = {"denoise": "denoise", "inpaint": "inpaint", "jpeg": "jpeg", "sr": "sr4"}


@dataclass
class RestoreRequest:
    task: str
    input: Path
    output: Path | None = None
    run_dir: Path | None = None
    preset: str | None = None
    iters: int | None = None
    stop: str | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    save_every: int = 500
    mask: str | None = None  # a path, or "alpha"
    invert_mask: bool = False
    scale: int | None = None  # super-resolution factor
    reference: Path | None = None
    resume: bool = False
    overwrite: bool = False


@dataclass
class RestoreResult:
    input: Path
    output: Path
    run_dir: Path
    preset: str
    device: str
    iterations: int
    selected_iteration: int
    stop_reason: str
    seconds: float
    psnr_input: float  # the output vs the observation, on the observed pixels
    psnr_reference: float | None = None
    ssim_reference: float | None = None
    psnr_reference_input: float | None = None  # the input (for sr: bicubic upscale) vs the reference
    resumed_from: int = 0

    def as_dict(self) -> dict:
        """JSON-ready: paths as strings, NaN as None."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, float) and math.isnan(value):
                value = None
            out[key] = value
        return out


class Observer(Protocol):
    """Progress sink (the CLI passes a Rich display; tests and batch may pass others)."""

    def start(self, name: str, total: int, done: int) -> None: ...
    def update(self, status: Status) -> None: ...
    def finish(self) -> None: ...


class _Silent:
    def start(self, name: str, total: int, done: int) -> None:
        pass

    def update(self, status: Status) -> None:
        pass

    def finish(self) -> None:
        pass


def default_output(input_path: Path) -> Path:
    return input_path.with_name(f"{input_path.stem}.restored.png")


def restore(request: RestoreRequest, observer: Observer | None = None) -> RestoreResult:
    """Run DIP on one image as ``request`` says; return where the result went and how it went."""
    observer = observer or _Silent()
    started = time.perf_counter()
    preset = _resolve_preset(request)
    output = request.output or default_output(request.input)
    run_dir = request.run_dir or output.parent / f"{request.input.stem}.dip"
    _check_paths(request, output)

    picture = load_image(request.input)
    known = _load_known(request, picture)
    operator, y = _observation(request, picture, known)
    out_h, out_w = picture.height * (request.scale or 1), picture.width * (request.scale or 1)
    reference = (
        _load_reference(request.reference, out_h, out_w, picture.channels) if request.reference else None
    )

    device = devices.resolve_device(request.device)
    threads = request.threads or devices.default_threads(picture.height * picture.width)
    devices.configure(device, threads)
    torch.manual_seed(request.seed)  # the network's initial weights
    net = build_network_for(preset, picture.channels)
    multiple = size_multiple(net)
    padded_h, padded_w = padded_size(out_h, out_w, multiple)
    needed = devices.estimate_bytes(net, preset.input_depth, padded_h, padded_w, multiple)
    devices.check_fits(
        needed,
        device,
        f"restoring {request.input.name} (to {out_w}x{out_h}) with preset {preset.name}",
    )
    code_rng = torch.Generator().manual_seed(request.seed)
    z = make_input(preset.input_kind, preset.input_depth, padded_h, padded_w, code_rng)

    fingerprint = _fingerprint(request, preset)
    resume_state, previous_seconds = _prepare_run_dir(request, run_dir, fingerprint, device)
    if resume_state is not None:
        z = resume_state["z"]
    net, z = net.to(device), z.to(device)
    jitter_rng = torch.Generator(device=device).manual_seed(request.seed + 1)

    problem = Problem(
        y=y.to(device),
        operator=operator.to(device),
        height=out_h,
        width=out_w,
        reference=None if reference is None else _to_tensor(reference.pixels).to(device),
    )
    settings = FitSettings(
        iters=preset.iters,
        lr=preset.lr,
        reg_noise_std=preset.reg_noise_std,
        ema=preset.ema,
        stop_rule=preset.stop_rule,
        window=preset.window,
        patience=preset.patience,
        warmup=preset.warmup,
        checkpoint_every=request.save_every,
        snapshot_every=request.save_every,
    )
    done = resume_state["fit"]["iteration"] if resume_state else 0
    run_info = {
        "dip_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "task": request.task,
        "input": str(request.input),
        "mask": request.mask,
        "invert_mask": request.invert_mask,
        "reference": None if request.reference is None else str(request.reference),
        "output": str(output),
        "seed": request.seed,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "image_size": [picture.width, picture.height],
        "output_size": [out_w, out_h],
        "scale": request.scale,
        "channels": picture.channels,
        "bit_depth": picture.bit_depth,
        "padded_size": [padded_w, padded_h],
        "parameters": count_parameters(net),
        "memory_estimate_bytes": needed,
        "preset": preset.as_dict(),
        "resumed_from": done,
        "status": "running",
    }
    _write_json(run_dir / "run.json", run_info)

    session_start = time.perf_counter()

    def elapsed() -> float:
        return previous_seconds + time.perf_counter() - session_start

    hooks = Hooks(
        on_log=lambda rows, status: (_append_metrics(run_dir / "metrics.csv", rows), observer.update(status)),
        on_checkpoint=lambda state: save_checkpoint(
            run_dir / "checkpoint.pt",
            {"fingerprint": fingerprint, "z": z, "fit": state, "seconds": elapsed()},
        ),
        on_snapshot=lambda iteration, image: save_image(
            run_dir / "snapshots" / f"iter_{iteration:06d}.png", _picture_like(picture, image)
        ),
    )
    observer.start(request.input.name, preset.iters, done)
    try:
        result = fit(
            net,
            z,
            problem,
            settings,
            generator=jitter_rng,
            hooks=hooks,
            resume=None if resume_state is None else resume_state["fit"],
        )
    except Interrupted:
        run_info.update(status="interrupted", seconds=round(elapsed(), 2))
        _write_json(run_dir / "run.json", run_info)
        raise
    finally:
        observer.finish()

    restored = _finish_picture(picture, result, known, request, (out_h, out_w))
    save_image(output, restored)
    outcome = RestoreResult(
        input=request.input,
        output=output,
        run_dir=run_dir,
        preset=preset.name,
        device=str(device),
        iterations=result.iterations,
        selected_iteration=result.selected_iteration,
        stop_reason=result.stop_reason,
        seconds=round(elapsed(), 2),
        psnr_input=_psnr_vs_input(result.image, operator.to("cpu"), y),
        resumed_from=done,
    )
    if reference is not None:
        outcome.psnr_reference = psnr(restored.pixels, reference.pixels)
        outcome.ssim_reference = ssim(restored.pixels, reference.pixels)
        # For super-resolution "the input" is its bicubic upscale, the baseline to beat.
        baseline = picture.pixels if not request.scale else _upscale(picture.pixels, (out_h, out_w))
        outcome.psnr_reference_input = psnr(baseline, reference.pixels)
    run_info.update(
        status="finished",
        stop_reason=result.stop_reason,
        iterations=result.iterations,
        selected_iteration=result.selected_iteration,
        seconds=outcome.seconds,
        wall_seconds_this_session=round(time.perf_counter() - started, 2),
        result=outcome.as_dict(),
    )
    _write_json(run_dir / "run.json", run_info)
    return outcome


def check_request(request: RestoreRequest) -> None:
    """Fail early on what would fail for every image of a batch: preset, options, device."""
    _resolve_preset(request)
    devices.resolve_device(request.device)


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Round up to the network's multiple, and to at least two of them: BatchNorm at the
    deepest level needs more than one value per channel."""
    return (
        max(math.ceil(height / multiple), 2) * multiple,
        max(math.ceil(width / multiple), 2) * multiple,
    )


def build_network_for(preset: Preset, channels: int) -> torch.nn.Module:
    try:
        return build_network(preset.network, preset.input_depth, channels, **preset.network_options())
    except (ValueError, TypeError) as exc:
        raise InputError(f"preset {preset.name}: {exc}") from None


# --- steps -----------------------------------------------------------------------------------


def _resolve_preset(request: RestoreRequest) -> Preset:
    default = "sr8" if request.task == "sr" and request.scale == 8 else TASK_DEFAULT_PRESET[request.task]
    preset = load_preset(request.preset or default)
    if request.task == "sr" and request.scale not in Downsample.SCALES:
        scales = ", ".join(map(str, Downsample.SCALES))
        raise InputError(f"--scale {request.scale} is not supported; use one of {scales}")
    if request.iters is not None and request.iters < 1:
        raise InputError(f"--iters must be >= 1, got {request.iters}")
    if request.save_every < 1:
        raise InputError(f"--save-every must be >= 1, got {request.save_every}")
    return preset.with_overrides(iters=request.iters, stop_rule=request.stop)


def _check_paths(request: RestoreRequest, output: Path) -> None:
    """The output is never an input (also through a link), a folder, or silently replaced."""
    inputs = [request.input, request.reference]
    if request.mask not in (None, "alpha"):
        inputs.append(Path(request.mask))
    for path in filter(None, inputs):
        same = output.exists() and path.exists() and output.samefile(path)
        if same or output.resolve() == path.resolve():
            raise InputError(f"the output {output} is an input file; dip never overwrites its inputs")
    if output.is_dir():
        raise InputError(f"the output {output} is a folder; give a file name such as {output / 'out.png'}")
    if output.exists() and not request.overwrite:
        raise InputError(f"{output} already exists; pass --overwrite to replace it or -o to write elsewhere")


def _load_known(request: RestoreRequest, picture: Picture) -> np.ndarray | None:
    if request.task != "inpaint":
        return None
    if request.mask is None:
        raise InputError("inpainting needs a mask: --mask PATH (white = keep, black = fill) or --mask alpha")
    if request.mask == "alpha":
        return mask_from_alpha(picture, invert=request.invert_mask)
    return load_mask(request.mask, picture.height, picture.width, invert=request.invert_mask)


def _load_reference(path: Path, height: int, width: int, channels: int) -> Picture:
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
    return reference


def _observation(
    request: RestoreRequest, picture: Picture, known: np.ndarray | None
) -> tuple[Operator, torch.Tensor]:
    """The operator A and the observation y (the input image, masked where unknown)."""
    y = _to_tensor(picture.pixels)
    if request.task == "sr":
        return Downsample(request.scale, picture.channels), y
    if known is None:
        return Identity(), y
    known_t = torch.from_numpy(known.astype(np.float32))[None, None]
    return Mask(known_t), y * known_t


def _fingerprint(request: RestoreRequest, preset: Preset) -> dict:
    """What must match for a checkpoint to be resumed: same inputs, settings and seed."""
    files = [request.input] + ([Path(request.mask)] if request.mask not in (None, "alpha") else [])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    settings = preset.as_dict()
    settings.pop("source")
    settings.pop("description")
    return {
        "task": request.task,
        "inputs_sha256": digest.hexdigest(),
        "invert_mask": request.invert_mask,
        "scale": request.scale,
        "seed": request.seed,
        "settings": json.dumps(settings, sort_keys=True),
    }


def _prepare_run_dir(
    request: RestoreRequest, run_dir: Path, fingerprint: dict, device: torch.device
) -> tuple[dict | None, float]:
    checkpoint = run_dir / "checkpoint.pt"
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"the run folder {run_dir} is a file; remove it or pass --run-dir")
    if checkpoint.exists() and request.resume:
        state = load_checkpoint(checkpoint, device)
        if state["fingerprint"] != fingerprint:
            changed = [k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k]]
            raise InputError(
                f"the checkpoint in {run_dir} was made with a different {', '.join(changed)}; "
                "resume with the same inputs and options, or start over with --overwrite"
            )
        _truncate_metrics(run_dir / "metrics.csv", state["fit"]["iteration"])
        return state, float(state.get("seconds", 0.0))
    if checkpoint.exists() and not request.overwrite:
        raise InputError(
            f"{run_dir} holds an earlier run of this image; pass --resume to continue it "
            "or --overwrite to start over"
        )
    if run_dir.exists() and request.overwrite:
        _clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.csv").write_text(",".join(METRIC_COLUMNS) + "\n")
    return None, 0.0


def _clear_run_dir(run_dir: Path) -> None:
    """Remove only what dip writes, never unknown files a user put there."""
    for name in ("checkpoint.pt", "metrics.csv", "run.json"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "snapshots", ignore_errors=True)


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Drop rows past the checkpoint: the resumed run writes them again."""
    if not path.exists():
        path.write_text(",".join(METRIC_COLUMNS) + "\n")
        return
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["iteration"]) <= iteration]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _append_metrics(path: Path, rows: list[dict]) -> None:
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _finish_picture(
    picture: Picture,
    result: FitResult,
    known: np.ndarray | None,
    request: RestoreRequest,
    size: tuple[int, int],
) -> Picture:
    pixels = result.image[0].permute(1, 2, 0).numpy()
    alpha = picture.alpha
    if alpha is not None and alpha.shape != size:
        alpha = _resize(alpha, size)
    if known is not None:
        # Known pixels are facts: keep them exactly, use the network only to fill the holes.
        pixels = np.where(known[..., None], picture.pixels, pixels)
        if request.mask == "alpha":
            alpha = None  # the transparent part is now filled: the result is opaque
    return Picture(pixels.astype(np.float32), alpha, picture.bit_depth)


def _picture_like(picture: Picture, image: torch.Tensor) -> Picture:
    return Picture(image[0].permute(1, 2, 0).numpy(), None, 8)


def _psnr_vs_input(image: torch.Tensor, operator: Operator, y: torch.Tensor) -> float:
    """How closely the network's output, degraded by A, matches the observed entries."""
    return psnr_from_mse(float(operator.mse(operator.A(image), y)))


def _upscale(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([_resize(pixels[..., c], size) for c in range(pixels.shape[2])], axis=2)


def _resize(channel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(channel.astype(np.float32))  # mode F
    return np.clip(np.asarray(image.resize((size[1], size[0]), Image.Resampling.BICUBIC)), 0, 1)


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float()


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str))
