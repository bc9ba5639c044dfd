"""The core: an observation, the operator that made it, and resolved settings in; the restored
array and a record of how it went out.

Everything else is a thin layer on this one function: ``api`` (arrays in, arrays out),
``tasks`` (which operator and baseline each task uses), ``restore`` (files in, files out),
``batch`` (many files), the experiments and the benchmarks. It knows nothing of files except
through an optional ``RunFolder`` (checkpoints, metrics, run.json, snapshots, resume).

The flow is one way: y, A -> network(z) -> fit -> A.finish -> array.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol

import numpy as np

from dip_cli import __version__
from dip_cli.errors import InputError, Interrupted
from dip_cli.metrics import psnr, psnr_from_mse, ssim
from dip_cli.run_folder import RunFolder
from dip_cli.settings import Settings


@dataclass
class Record:
    """How one restoration went: saved in run.json, shown in summaries."""

    iterations: int  # steps run in total
    selected_iteration: int  # the step whose output was kept
    stop_reason: str  # "early-stop" | "budget"
    seconds: float  # wall time, over all sessions of a resumed run (tiles side by side count once)
    psnr_input: float  # A(output) vs the observation, on the observed entries
    resumed_from: int = 0
    psnr_reference: float | None = None
    ssim_reference: float | None = None
    psnr_reference_input: float | None = None  # the task's baseline (e.g. bicubic for sr) vs the reference
    history: list[dict] = field(default_factory=list, repr=False)  # per-iteration metrics (metrics.csv)

    def as_dict(self) -> dict:
        """JSON-ready figures (the history stays out): NaN as None."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


class Observer(Protocol):
    """Progress sink: the CLI passes a Rich display; batches forward to theirs."""

    def start(self, name: str, total: int, done: int) -> None: ...
    def update(self, status) -> None: ...
    def skip(self, steps: int) -> None:
        """``steps`` found done by an earlier session after ``start`` (a tiled run's parts
        resumed from their checkpoints): counted in the next update, but not this session's
        work, so a display that times the session leaves them out of its rate."""

    def finish(self) -> None: ...


class Silent:
    def start(self, name: str, total: int, done: int) -> None:
        pass

    def update(self, status) -> None:
        pass

    def skip(self, steps: int) -> None:
        pass

    def finish(self) -> None:
        pass


class CallbackObserver(Silent):
    """Progress as a function of each ``fit.Status`` (the API's ``progress=callable``)."""

    def __init__(self, callback: Callable) -> None:
        self.callback = callback

    def update(self, status) -> None:
        self.callback(status)


def restore_array(
    y: np.ndarray,
    operator,
    settings: Settings,
    *,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    reference: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    run: RunFolder | None = None,
    save_every: int = 500,
    observer: Observer | None = None,
    on_snapshot: Callable[[int, np.ndarray], None] | None = None,
    name: str = "image",
    info: dict | None = None,
    tile: str | int = "auto",
) -> tuple[np.ndarray, Record]:
    """Fit DIP to the observation ``y`` (H, W, C float32 in [0, 1]) degraded by ``operator``.

    Returns the restored image (float32 (H', W', C) at ``operator.output_size``) and its
    ``Record``. With ``reference`` (the clean image) the record gets PSNR/SSIM against it,
    and ``baseline`` (what a user has without dip) is scored too. ``run`` makes the fit
    checkpoint and resume; ``info`` is added to its run.json (the file layer's paths). Every
    ``save_every`` steps the run folder gets a checkpoint and a snapshot, and ``on_snapshot``
    (if given) the smoothed output.

    ``tile``: ``"off"`` fits the whole image at once; an integer fits overlapping tiles of at
    most that side, each its own DIP problem (``restore_in_tiles``); ``"auto"`` tiles an image
    larger than ``tiled.AUTO_WHOLE`` (512 px) in tiles of ``tiled.auto_tile_side`` (up to 576 px;
    less for a network whose fit would need more than ``tiled.AUTO_TILE_BYTES`` on a CPU, and for
    a photo whose planes eat into that budget: ``tiled.fit_budget``) and fits a smaller one whole.
    ``settings.fit.restarts`` > 1 fits the image (or each tile) that many times from independent
    seeds and averages the outputs.
    """
    from dip_cli.tiled import plan_layout, restore_in_tiles, whole_layout

    layout = plan_layout(y, operator, tile, settings, device, threads)
    if layout is None and settings.fit.restarts > 1:  # several fits: the parts machinery of tiles
        layout = whole_layout(y, operator)
    if layout is not None:
        return restore_in_tiles(
            y, operator, settings, layout, seed=seed, device=device, threads=threads, reference=reference,
            baseline=baseline, run=run, save_every=save_every, observer=observer, name=name, info=info,
        )  # fmt: skip
    return _restore_whole(
        y, operator, settings, seed=seed, device=device, threads=threads, reference=reference,
        baseline=baseline, run=run, save_every=save_every, observer=observer, on_snapshot=on_snapshot,
        name=name, info=info,
    )  # fmt: skip


def _restore_whole(
    y: np.ndarray,
    operator,
    settings: Settings,
    *,
    seed: int,
    device: str,
    threads: int | None,
    reference: np.ndarray | None,
    baseline: np.ndarray | None,
    run: RunFolder | None,
    save_every: int,
    observer: Observer | None,
    on_snapshot: Callable[[int, np.ndarray], None] | None,
    name: str,
    info: dict | None,
    initial_weights: dict | None = None,
    trained: dict | None = None,
    snapshots: bool = True,
    finish: bool = True,
) -> tuple[np.ndarray, Record]:
    """The whole image as one DIP problem (``restore_array``'s untiled path). ``initial_weights``
    replace the network's random initialisation; ``trained`` (a dict) receives its final weights;
    ``snapshots=False`` keeps the run folder's snapshots out (tiles: hundreds of them);
    ``finish=False`` returns the fitted image without ``operator.finish`` (several fits are
    averaged first and finished once)."""
    import torch

    from dip_cli import device as devices
    from dip_cli.fit import Cadence, Hooks, Problem, fit
    from dip_cli.networks import count_parameters, make_input
    from dip_cli.stopping import estimate_noise_variance

    observer = observer or Silent()
    if save_every < 1:
        raise InputError(f"save_every must be >= 1, got {save_every}")
    height, width = operator.output_size(y.shape[0], y.shape[1])
    _check_reference(reference, (height, width, y.shape[2]))
    torch_device = devices.resolve_device(device)
    devices.configure(torch_device, threads or devices.default_threads(height * width))
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(seed)  # the network's initial weights
        net, (padded_h, padded_w) = build_network_for(settings, y.shape[2], height, width)
    if initial_weights is not None:
        net.load_state_dict(initial_weights)
    needed = devices.estimate_bytes(net, settings.input.depth, padded_h, padded_w)
    devices.check_fits(needed, torch_device, f"restoring {name} (to {width}x{height}) with {settings.name}")
    z = make_input(
        settings.input.kind, settings.input.depth, padded_h, padded_w, torch.Generator().manual_seed(seed)
    )
    y_t = _to_tensor(y)
    fingerprint = _fingerprint(y_t, operator, settings, seed)
    state = run.start(fingerprint, torch_device) if run is not None else None
    previous_seconds = float(state["seconds"]) if state else 0.0
    if state is not None:
        z = state["z"]
    done = state["fit"]["iteration"] if state else 0
    layout = devices.memory_format(torch_device)  # channels-last on the CPU: faster convolutions
    net, z = net.to(torch_device, memory_format=layout), z.to(torch_device, memory_format=layout)
    operator = operator.to(torch_device)
    y_t = y_t.to(torch_device)
    noise_variance = None
    if settings.stop.rule == "auto" and settings.stop.noise_floor > 0:
        noise_variance = estimate_noise_variance(y)  # of this observation (a tile: of the tile)
    problem = Problem(
        y=y_t,
        operator=operator,
        height=height,
        width=width,
        reference=None if reference is None else _to_tensor(reference).to(torch_device),
        noise_variance=noise_variance,
    )
    run_info = {
        **(info or {}),
        "dip_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "settings": settings.as_dict(),
        "seed": seed,
        "device": str(torch_device),
        "threads": torch.get_num_threads(),
        "observation_size": [y.shape[1], y.shape[0]],
        "output_size": [width, height],
        "channels": y.shape[2],
        "padded_size": [padded_w, padded_h],
        "operator": operator.describe(),
        "parameters": count_parameters(net),
        "memory_estimate_bytes": needed,
        **({"noise_sigma_estimate": round(255 * noise_variance**0.5, 2)} if noise_variance else {}),
        "resumed_from": done,
        "status": "running",
    }
    session_start = time.perf_counter()

    def elapsed() -> float:
        return round(previous_seconds + time.perf_counter() - session_start, 2)

    def log(rows: list[dict], status) -> None:
        if run is not None:
            run.append_metrics(rows)
        observer.update(status)

    def snapshot(iteration: int, image) -> None:
        pixels = _to_pixels(image)
        if run is not None and snapshots:
            run.save_snapshot(iteration, pixels)
        if on_snapshot is not None:
            on_snapshot(iteration, pixels)

    def checkpoint(fit_state: dict) -> None:
        payload = {"fingerprint": fingerprint, "settings": settings.as_dict(), "z": z, "fit": fit_state}
        run.save_checkpoint({**payload, "seconds": elapsed()})

    if run is not None:
        run.write_info(run_info)
    hooks = Hooks(on_log=log, on_checkpoint=checkpoint if run else None, on_snapshot=snapshot)
    cadence = Cadence(
        checkpoint_every=save_every if run is not None else 0,
        snapshot_every=save_every if (run is not None and snapshots) or on_snapshot is not None else 0,
    )
    jitter_rng = torch.Generator(device=torch_device).manual_seed(seed + 1)
    observer.start(name, settings.fit.iters, done)
    try:
        result = fit(
            net,
            z,
            problem,
            settings,
            generator=jitter_rng,
            hooks=hooks,
            resume=state and state["fit"],
            cadence=cadence,
        )
    except Interrupted:
        if run is not None:
            run.write_info({**run_info, "status": "interrupted", "seconds": elapsed()})
        raise
    finally:
        observer.finish()
    if trained is not None:
        trained["net"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    with torch.no_grad():
        image = result.image.to(torch_device)
        mse_input = float(operator.loss(image, y_t))
        pixels = _to_pixels((operator.finish(image, y_t) if finish else image).clamp(0, 1))
    record = Record(
        iterations=result.iterations,
        selected_iteration=result.selected_iteration,
        stop_reason=result.stop_reason,
        seconds=elapsed(),
        psnr_input=psnr_from_mse(mse_input),
        resumed_from=done,
        history=result.history,
    )
    if reference is not None:
        record.psnr_reference = psnr(pixels, reference)
        record.ssim_reference = ssim(pixels, reference)
        if baseline is not None:
            record.psnr_reference_input = psnr(baseline, reference)
    if run is not None:
        run.write_info(
            {
                **run_info,
                "status": "finished",
                "stop_reason": record.stop_reason,
                "iterations": record.iterations,
                "selected_iteration": record.selected_iteration,
                "seconds": record.seconds,
                "result": record.as_dict(),
            }
        )
    return pixels, record


def _array_fingerprint(y: np.ndarray, operator, settings: Settings, seed: int) -> dict:
    """``_fingerprint`` of ``_to_tensor(y)``, hashed one channel plane at a time: the same digest
    (a (1, C, H, W) tensor's bytes are its planes in turn) without a whole-image copy, which
    is 0.29 GB for a 24 MP photo."""
    planes = (np.ascontiguousarray(y[:, :, c], dtype=np.float32) for c in range(y.shape[2]))
    return _fingerprint_of(planes, operator, settings, seed)


def build_network_for(settings: Settings, channels: int, height: int = 64, width: int = 64):
    """The preset's network for an image of this size, and the padded size of its input.

    A preset may name any registered network with that builder's options; a wrong name or
    option is the preset's error (exit 2), not a crash.
    """
    from dip_cli.networks import build_for_image

    try:
        return build_for_image(
            settings.network.kind, settings.input.depth, channels, height, width, **settings.network.options
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"preset {settings.source or settings.name}: [network] {exc}") from None


def _check_reference(reference: np.ndarray | None, shape: tuple[int, int, int]) -> None:
    if reference is not None and reference.shape != shape:
        raise InputError(
            f"the reference is {reference.shape[1]}x{reference.shape[0]} with {reference.shape[2]} "
            f"channel(s) but the output is {shape[1]}x{shape[0]} with {shape[2]}; they must match"
        )


def _fingerprint(y, operator, settings: Settings, seed: int) -> dict:
    """What must match for a checkpoint to be resumed: the same data, operator, settings, seed."""
    return _fingerprint_of([np.ascontiguousarray(y.cpu().numpy())], operator, settings, seed)


def _fingerprint_of(chunks, operator, settings: Settings, seed: int) -> dict:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)  # a contiguous array's buffer, not a copy of it
    for key, buffer in operator.state_dict().items():
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(buffer.cpu().numpy()))
    return {
        "observation_sha256": digest.hexdigest(),
        "operator": operator.describe(),
        "settings": json.dumps(settings.essentials(), sort_keys=True),
        "seed": seed,
    }


def _to_tensor(pixels: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32))[None]


def _to_pixels(image) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 array on the host."""
    return np.ascontiguousarray(image[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)
