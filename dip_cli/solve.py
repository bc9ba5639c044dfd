"""One DIP problem: an observation, the operator that made it, settings and run options in; the
restored pixels and a record of how it went out.

The steps, in order: the device and threads; the preset's network and its fixed code z, both
from the seed; the memory check; the run folder's resume contract (the checkpoint to continue,
if the fingerprint matches); the fit (``fit.fit``, with hooks onto the run folder); the operator's
``finish`` (known pixels put back, a JPEG moved into its quantization box); the record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dip_cli.errors import InputError, Interrupted
from dip_cli.options import RunOptions
from dip_cli.progress import Silent
from dip_cli.provenance import Clock, Record, fingerprint, versions
from dip_cli.run_folder import FitRecorder, RunFolder
from dip_cli.settings import Settings


@dataclass(frozen=True)
class Part:
    """How a fit that is one part of a larger run (a tile, one of several fits) differs."""

    start_weights: dict | None = None  # instead of a random initialisation (a warm start)
    keep_weights: bool = False  # return the trained weights (for the next tile's warm start)
    snapshots: bool = True  # the run folder's snapshots (a tiled run's would be hundreds)
    finish: bool = True  # apply operator.finish (several fits are averaged first, then finished)


@dataclass
class Solution:
    pixels: np.ndarray  # (H', W', C) float32 at operator.output_size
    record: Record
    weights: dict | None = None  # the trained network, with Part(keep_weights=True)


def solve(
    y: np.ndarray,
    operator,
    settings: Settings,
    options: RunOptions,
    *,
    run: RunFolder | None = None,
    reference: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    info: dict | None = None,
    on_snapshot=None,
    part: Part = Part(),
) -> Solution:
    """Fit DIP to ``y`` (H, W, C float32 in [0, 1]) degraded by ``operator``, as one problem."""
    import torch

    from dip_cli import resources
    from dip_cli.fit import fit

    height, width = operator.output_size(y.shape[0], y.shape[1])
    check_reference(reference, (height, width, y.shape[2]))
    device = resources.resolve_device(options.device)
    resources.configure(device, options.threads or resources.default_threads(height * width))
    net, z = _network_and_code(settings, y.shape[2], height, width, options.seed, part.start_weights)
    needed = resources.estimate_bytes(net, settings.input.depth, z.shape[-2], z.shape[-1])
    resources.check_fits(
        needed, device, f"restoring {options.name} (to {width}x{height}) with {settings.name}"
    )
    stamp = fingerprint(y, operator, settings, options.seed)
    state = run.start(stamp, device) if run is not None else None
    z = state["z"] if state is not None else z
    layout = resources.memory_format(device)  # channels-last on the CPU: faster convolutions
    net, z = net.to(device, memory_format=layout), z.to(device, memory_format=layout)
    problem = _problem(y, operator.to(device), reference, settings, device, height, width)
    details = _details(net, z, problem, settings, options, needed, state)
    recorder = FitRecorder(
        run, options.observer or Silent(), Clock(state["seconds"] if state else 0.0).elapsed,
        {**(info or {}), **details}, snapshots=part.snapshots, on_snapshot=on_snapshot,
    )  # fmt: skip
    recorder.status("running")
    jitter = torch.Generator(device=device).manual_seed(options.seed + 1)
    recorder.observer.start(options.name, settings.fit.iters, details["resumed_from"])
    try:
        result = fit(
            net, z, problem, settings, generator=jitter, resume=state and state["fit"],
            hooks=recorder.hooks({"fingerprint": stamp, "settings": settings.as_dict(), "z": z}),
            cadence=recorder.cadence(options.save_every),
        )  # fmt: skip
    except Interrupted:
        recorder.status("interrupted", seconds=recorder.elapsed())
        raise
    finally:
        recorder.observer.finish()
    solution = _finished(result, problem, part, net, recorder.elapsed(), details["resumed_from"])
    solution.record.score(solution.pixels, reference, baseline)
    recorder.status("finished", **_figures(solution.record))
    return solution


def check_reference(reference: np.ndarray | None, shape: tuple[int, int, int]) -> None:
    if reference is not None and reference.shape != shape:
        raise InputError(
            f"the reference is {reference.shape[1]}x{reference.shape[0]} with {reference.shape[2]} "
            f"channel(s) but the output is {shape[1]}x{shape[0]} with {shape[2]}; they must match"
        )


def _network_and_code(settings: Settings, channels: int, height: int, width: int, seed: int, weights):
    """The preset's network (initial weights from ``seed``, or ``weights``) and its code z."""
    import torch

    from dip_cli.networks import build_for, make_input

    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(seed)  # the network's initial weights
        net, (padded_h, padded_w) = build_for(settings, channels, height, width)
    if weights is not None:
        net.load_state_dict(weights)
    generator = torch.Generator().manual_seed(seed)
    return net, make_input(settings.input.kind, settings.input.depth, padded_h, padded_w, generator)


def _problem(y: np.ndarray, operator, reference, settings: Settings, device, height: int, width: int):
    from dip_cli.fit import Problem
    from dip_cli.operators import to_tensor
    from dip_cli.stopping import estimate_noise_variance

    noise_variance = None
    if settings.stop.rule == "auto" and settings.stop.noise_floor > 0:
        noise_variance = estimate_noise_variance(y)  # of this observation (a tile: of the tile)
    return Problem(
        y=to_tensor(y).to(device),
        operator=operator,
        height=height,
        width=width,
        reference=None if reference is None else to_tensor(reference).to(device),
        noise_variance=noise_variance,
    )


def _details(net, z, problem, settings: Settings, options: RunOptions, needed: int, state) -> dict:
    """What run.json records of the problem and how it is run."""
    import torch

    from dip_cli.networks import count_parameters

    y, variance = problem.y, problem.noise_variance
    return {
        **versions(),
        "settings": settings.as_dict(),
        "options": options.as_dict(),
        "seed": options.seed,
        "device": z.device.type,
        "threads": torch.get_num_threads(),
        "observation_size": [y.shape[-1], y.shape[-2]],
        "output_size": [problem.width, problem.height],
        "channels": y.shape[1],
        "padded_size": [z.shape[-1], z.shape[-2]],
        "operator": problem.operator.describe(),
        "finish": problem.operator.finish_description(),
        "parameters": count_parameters(net),
        "memory_estimate_bytes": needed,
        **({"noise_sigma_estimate": round(255 * variance**0.5, 2)} if variance else {}),
        "resumed_from": state["fit"]["iteration"] if state else 0,
    }


def _finished(result, problem, part: Part, net, seconds: float, resumed_from: int) -> Solution:
    """The fit's selected output, finished by the operator, with its record."""
    import torch

    from dip_cli.metrics import psnr_from_mse
    from dip_cli.operators import to_pixels

    operator, y = problem.operator, problem.y
    with torch.no_grad():
        image = result.image.to(y.device)
        mse_input = float(operator.loss(image, y))
        pixels = to_pixels((operator.finish(image, y) if part.finish else image).clamp(0, 1))
    record = Record(
        iterations=result.iterations,
        selected_iteration=result.selected_iteration,
        stop_reason=result.stop_reason,
        seconds=seconds,
        psnr_input=psnr_from_mse(mse_input),
        resumed_from=resumed_from,
        history=result.history,
    )
    weights = (
        {k: v.detach().cpu().clone() for k, v in net.state_dict().items()} if part.keep_weights else None
    )
    return Solution(pixels, record, weights)


def _figures(record: Record) -> dict:
    """run.json's figures of a finished run."""
    keep = ("stop_reason", "iterations", "selected_iteration", "seconds")
    return {**{k: getattr(record, k) for k in keep}, "result": record.as_dict()}
