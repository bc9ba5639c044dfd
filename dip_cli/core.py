"""The core: an observation, the operator that made it, and resolved settings in; the restored
array and a record of how it went out.

Everything else is a thin layer on this one function: ``api`` (arrays in, arrays out),
``tasks`` (which operator and baseline each task uses), ``restore`` (files in, files out),
``batch`` (many files), the experiments and the benchmarks. It knows nothing of files except
through an optional ``RunFolder`` (checkpoints, metrics, run.json, snapshots, resume).

The flow is one way: y, A -> network(z) -> fit -> A.finish -> array.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
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
    seconds: float  # fitting time, over all sessions of a resumed run
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
    def finish(self) -> None: ...


class Silent:
    def start(self, name: str, total: int, done: int) -> None:
        pass

    def update(self, status) -> None:
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
    most that side, each its own DIP problem (``restore_in_tiles``); ``"auto"`` tiles of at most
    ``AUTO_TILE`` an image larger than that on a side, and fits a smaller one whole.
    ``settings.fit.restarts`` > 1 fits the image (or each tile) that many times from independent
    seeds and averages the outputs.
    """
    layout = plan_layout(y, operator, tile)
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
    problem = Problem(
        y=y_t,
        operator=operator,
        height=height,
        width=width,
        reference=None if reference is None else _to_tensor(reference).to(torch_device),
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


# --- tiles ---------------------------------------------------------------------------------------

#: The largest side ``tile="auto"`` fits whole, and its tiles' largest side. The presets' budgets
#: are set at the paper's sizes (up to 512 px); a larger image fitted whole is still far from
#: done at the end of them: a 1024 x 1024 JPEG (quality 10, 26.97 dB) fitted whole with the
#: jpeg preset was at 23.0 dB after 1000 of its 2400 iterations, rising 0.9 dB per 200, while
#: 128-256 px problems pass their JPEG within a few hundred. The same budget on smaller tiles
#: gets further (tiles were 0.04-1.2 dB better than whole 256 px images), and a tile's memory
#: is bounded (1.35 GiB for the denoising net at 512 px).
#: The overlap between neighbouring tiles: a quarter of a small tile, at most 64 px (the blend
#: window's ramp).
AUTO_TILE = 512
TILE_OVERLAP = 64
MIN_TILE = 32


def tile_overlap(tile: int) -> int:
    return max(8, min(TILE_OVERLAP, tile // 4))


def plan_layout(y: np.ndarray, operator, tile: str | int):
    """The tiles for this image (in the operator's frame: stored orientation for a JPEG file),
    or None for a whole-image fit."""
    from dip_cli.tiles import plan_tiles

    if tile == "off":
        return None
    height, width = _frame_size(operator, *operator.output_size(y.shape[0], y.shape[1]))
    if tile == "auto":
        tile = AUTO_TILE
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE:
        raise InputError(f"tile must be 'auto', 'off' or a side of at least {MIN_TILE} px, got {tile!r}")
    if height <= tile and width <= tile:
        return None  # one tile is the whole image
    return plan_tiles(height, width, tile, tile_overlap(tile), multiple=operator.tile_multiple())


def whole_layout(y: np.ndarray, operator):
    """One tile that is the whole image (in the operator's frame): several fits of it are
    ``restore_in_tiles``' parts, checkpointed and resumed like tiles."""
    from dip_cli.tiles import plan_tiles

    height, width = _frame_size(operator, *operator.output_size(y.shape[0], y.shape[1]))
    multiple = operator.tile_multiple()
    side = -(-max(height, width) // multiple) * multiple  # on the grid, so one tile covers it all
    return plan_tiles(height, width, side, tile_overlap(side), multiple=multiple)


def restore_in_tiles(
    y: np.ndarray,
    operator,
    settings: Settings,
    layout,
    *,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    reference: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    run: RunFolder | None = None,
    save_every: int = 500,
    observer: Observer | None = None,
    name: str = "image",
    info: dict | None = None,
    warm_start: bool = False,
) -> tuple[np.ndarray, Record]:
    """Restore overlapping tiles one after another, each its own DIP problem (its own network,
    code z and early stop), and blend them with a smooth window. With ``settings.fit.restarts``
    = R, each tile is fitted R times and the fits' outputs are averaged; fit (part) ``p = index *
    R + member`` has the seed ``seed + p``.

    Memory is bounded by one tile's fit plus the blended image. With ``run``, each part has its
    own run folder (``tiles/NNNN/``): the part in progress checkpoints and resumes, finished parts
    keep their output, so a killed run loses at most part of one fit. ``warm_start`` starts each
    tile from the previous tile's trained weights (not its code z) instead of a fresh
    initialisation. With ``reference``, each tile's metrics carry PSNR against its part.
    """
    from dip_cli.tiles import Accumulator

    observer = observer or Silent()
    restarts = settings.fit.restarts
    if warm_start and restarts > 1:
        raise ValueError("warm_start starts each fit from the last one: it defeats restarts > 1")
    frame_y, frame_operator, to_frame, to_display = _stored_frame(y, operator)
    for tile in layout:  # a tile that cannot be a problem of its own fails before any work
        frame_operator.crop(frame_y, *tile.box)
    fingerprint = _array_fingerprint(frame_y, frame_operator, settings, seed)
    plan = {"fingerprint": fingerprint, "warm_start": warm_start, **layout.as_dict()}
    resuming = run.start_tiles(plan) if run is not None else False
    run_info = {
        **(info or {}),
        "dip_version": __version__,
        "settings": settings.as_dict(),
        "seed": seed,
        "operator": operator.describe(),
        "observation_size": [y.shape[1], y.shape[0]],
        "tiles": layout.as_dict(),
        "warm_start": warm_start,
        "status": "running",
    }
    if run is not None:
        run.write_info(run_info)
    label = _parts_label(name, len(layout), restarts)
    tiles = _Tiles(
        frame_y, frame_operator, settings, None if reference is None else to_frame(reference),
        _TileProgress(observer, label, len(layout) * restarts, settings.fit.iters),
        dict(seed=seed, device=device, threads=threads, save_every=save_every),
        run, resuming, warm_start,
    )  # fmt: skip
    blended = Accumulator(layout, y.shape[2])
    records: list[dict] = []
    try:
        for tile in layout:
            pixels, record = tiles.restore(tile)
            blended.add(tile, pixels)
            records.append(record)
    except Interrupted:
        if run is not None:
            run.write_info({**run_info, "status": "interrupted", "tiles_done": len(records)})
        raise
    finally:
        tiles.progress.finish()
    pixels = to_display(blended.result())
    record = _tiled_record(records, layout)
    if reference is not None:
        record.psnr_reference = psnr(pixels, reference)
        record.ssim_reference = ssim(pixels, reference)
        if baseline is not None:
            record.psnr_reference_input = psnr(baseline, reference)
    if run is not None:
        result = record.as_dict()
        run.write_info({**run_info, "status": "finished", "tile_results": records, "result": result})
    return pixels, record


def _tiled_record(records: list[dict], layout) -> Record:
    """The image's record from its tiles': work summed, PSNR vs the input averaged by area."""
    return _combined_record(records, [t.height * t.width for t in layout], "tiles")


def _combined_record(records: list[dict], weights: list[float], unit: str) -> Record:
    """Several fits' records as one: work summed, the fits' MSE vs the input averaged."""
    from dip_cli.metrics import psnr_from_mse

    mse = float(np.average([10 ** (-r["psnr_input"] / 10) for r in records], weights=weights))
    stops = [r["stop_reason"] for r in records]
    if len(set(stops)) == 1:
        stop = stops[0]
    else:
        early = sum(s.startswith("early-stop") for s in stops)
        stop = f"early-stop ({early} of {len(stops)} {unit})"
    return Record(
        iterations=sum(r["iterations"] for r in records),
        selected_iteration=sum(r["selected_iteration"] for r in records),
        stop_reason=stop,
        seconds=round(sum(r["seconds"] for r in records), 2),
        psnr_input=psnr_from_mse(mse),
        resumed_from=sum(r["resumed_from"] for r in records),
    )


def _parts_label(name: str, tiles: int, restarts: int) -> str:
    fits = f"{restarts} fits" if restarts > 1 else ""
    if tiles == 1:
        return f"{name} ({fits})"
    return f"{name} ({tiles} tiles{' × ' + fits if fits else ''})"


@dataclass
class _Tiles:
    """What every tile's fit shares; ``restore`` does one tile."""

    y: np.ndarray  # the observation in the operator's frame
    operator: object
    settings: Settings
    reference: np.ndarray | None
    progress: _TileProgress
    options: dict  # seed, device, threads, save_every
    run: RunFolder | None
    resuming: bool
    warm_start: bool
    weights: dict | None = None  # the last finished tile's trained weights (warm start)

    def restore(self, tile) -> tuple[np.ndarray, dict]:
        """The tile: the mean of its ``restarts`` fits (one fit: that fit's output). The fits are
        averaged as fitted and the operator's ``finish`` (a JPEG's projection into its
        quantization box) is applied once, to the mean."""
        restarts = self.settings.fit.restarts
        if restarts == 1:
            return self.fit(tile, tile.index)
        outputs, records = zip(
            *(self.fit(tile, tile.index * restarts + m, finish=False) for m in range(restarts)), strict=True
        )
        mean = np.mean(np.stack(outputs), axis=0, dtype=np.float64).astype(np.float32)
        return self.finish(tile, mean), _combined_record(list(records), [1.0] * restarts, "fits").as_dict()

    def finish(self, tile, pixels: np.ndarray) -> np.ndarray:
        import torch

        y_tile, operator_tile = self.operator.crop(self.y, *tile.box)
        with torch.no_grad():
            finished = operator_tile.finish(_to_tensor(pixels), _to_tensor(y_tile))
        return _to_pixels(finished.clamp(0, 1))

    def part_name(self, tile, part: int) -> str:
        restarts = self.settings.fit.restarts
        return f"tile {tile.index}" if restarts == 1 else f"tile {tile.index}, fit {part % restarts + 1}"

    def fit(self, tile, part: int, finish: bool = True) -> tuple[np.ndarray, dict]:
        """One fit of ``tile`` (seed ``seed + part``): a resumed run's finished part as it was;
        otherwise a fit (resumed if it had begun). ``finish=False``: without ``operator.finish``."""
        tile_run = self.run.tile(part) if self.run is not None else None
        if tile_run is not None and self.resuming:
            done = tile_run.load_result()
            if done is not None:
                if self.warm_start:
                    self.weights = tile_run.load_weights()
                return done, (tile_run.read_info() or {})["result"]
        y_tile, operator_tile = self.operator.crop(self.y, *tile.box)
        reference = None if self.reference is None else self.reference[tile.rows, tile.cols]
        trained: dict = {}
        with tile_run if tile_run is not None else contextlib.nullcontext():  # its lock, however it ends
            pixels, record = _restore_whole(
                y_tile, operator_tile, self.settings, seed=self.options["seed"] + part,
                device=self.options["device"], threads=self.options["threads"], reference=reference,
                baseline=None, run=tile_run, save_every=self.options["save_every"],
                observer=self.progress.tile(part), on_snapshot=None, name=self.part_name(tile, part),
                info={"tile": list(tile.box)}, initial_weights=self.weights if self.warm_start else None,
                trained=trained, snapshots=False, finish=finish,
            )  # fmt: skip
            if tile_run is not None:  # the result replaces the tile's checkpoint (tens of MB each)
                tile_run.save_result(pixels, trained["net"] if self.warm_start else None)
                if self.warm_start and part > 0:  # only the last finished tile's weights are needed
                    self.run.tile(part - 1).drop_weights()
        self.weights = trained.get("net")
        return pixels, record.as_dict()


class _TileProgress:
    """One progress bar over all tiles: the ETA counts the tiles still to fit."""

    def __init__(self, observer: Observer, name: str, count: int, iters: int) -> None:
        self.observer, self.count, self.iters = observer, count, iters
        observer.start(name, count * iters, 0)  # name: the image and its parts (_parts_label)

    def tile(self, index: int) -> Observer:
        return _OneTile(self, index)

    def finish(self) -> None:
        self.observer.finish()


class _OneTile(Silent):
    """A tile's fit reports into the bar of all tiles, offset by the tiles before it."""

    def __init__(self, progress: _TileProgress, index: int) -> None:
        self.progress, self.offset = progress, index * progress.iters

    def update(self, status) -> None:
        total = self.progress.count * self.progress.iters
        self.progress.observer.update(replace(status, iteration=self.offset + status.iteration, iters=total))


def _frame_size(operator, height: int, width: int) -> tuple[int, int]:
    """The output size in the operator's frame (a rotated JPEG is tiled as stored)."""
    return (width, height) if getattr(operator, "orientation", 1) >= 5 else (height, width)


def _stored_frame(y: np.ndarray, operator):
    """A JPEG file with an EXIF rotation is tiled in its stored orientation, on its block grid,
    and the blended result rotated for display. Other operators have one frame."""
    orientation = getattr(operator, "orientation", 1)
    if orientation == 1:
        return y, operator, lambda pixels: pixels, lambda pixels: pixels
    import torch

    from dip_cli.operators import JpegModel, _to_display, _to_stored

    stored = JpegModel(
        replace(operator.jpeg, orientation=1), project=operator.project, weighting=operator.weighting
    )

    def turn(pixels: np.ndarray, to) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]
        return np.ascontiguousarray(to(tensor, orientation)[0].permute(1, 2, 0).numpy())

    return turn(y, _to_stored), stored, lambda p: turn(p, _to_stored), lambda p: turn(p, _to_display)


def _array_fingerprint(y: np.ndarray, operator, settings: Settings, seed: int) -> dict:
    return _fingerprint(_to_tensor(y), operator, settings, seed)


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
    digest = hashlib.sha256(y.cpu().numpy().tobytes())
    for key, buffer in operator.state_dict().items():
        digest.update(key.encode())
        digest.update(buffer.cpu().numpy().tobytes())
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
