"""Restoring an image as parts: overlapping tiles of a large photo, several fits of one image.

A tiled run cuts the output into overlapping tiles (``tiles.plan_tiles``), fits each as its
own DIP problem (``core._restore_whole`` on the tile's crop of the observation, with its own
network, code z and early stop) and blends them (``tiles.Accumulator``). With
``settings.fit.restarts`` = R each tile is fitted R times from independent seeds and the fits'
outputs averaged: the ``-avg3`` presets. An untiled image with R > 1 is one tile that is the
whole image. Each fit is a *part*; part ``p = tile * R + member`` has the seed ``seed + p``.

Parts are independent, so on a CPU several are fitted at once, each in its own worker process
(``workers.run_jobs``) with one thread: a 384 px jpeg tile's step took 136 ms on one thread,
two such fits side by side 145 ms each, while one fit on both threads took 141 ms (the CLI's
passive waits) or 98 ms (spinning) on this 2-core CPU. On a GPU parts run one after another.

Resuming: with a run folder, each part has its own (``tiles/NNNN/``): a finished part keeps
its output, a part in progress its checkpoint, so a killed run loses at most the steps since
each running part's last checkpoint. Outputs are blended in tile order whatever order the
parts finish in, so a run gives the same image bit for bit however it was interrupted.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace

import numpy as np

from dip_cli import __version__
from dip_cli.core import (
    Observer,
    Record,
    Silent,
    _array_fingerprint,
    _restore_whole,
    _to_pixels,
    _to_tensor,
)
from dip_cli.errors import DipError, InputError, Interrupted
from dip_cli.metrics import psnr, ssim
from dip_cli.run_folder import RunFolder
from dip_cli.settings import AUTO_TILE, MIN_TILE, Settings

#: ``tile="auto"`` fits an image of up to ``AUTO_WHOLE`` px a side whole: the presets' budgets
#: are set at the paper's sizes (512 px). A larger image fitted whole is still far from done at
#: the end of them: a 1024 x 1024 JPEG (quality 10, 26.97 dB) fitted whole with the jpeg preset
#: was at 23.0 dB after 1000 of its 2400 iterations, rising 0.9 dB per 200, while 128-512 px
#: problems pass their JPEG within a few hundred. The same budget on smaller tiles gets further
#: (tiles were 0.04-1.3 dB better than whole 256 and 512 px images, JPEG at 512 px 0.13 worse).
AUTO_WHOLE = 512
#: A larger image is cut into tiles of at most ``AUTO_TILE`` px a side (``settings.AUTO_TILE``,
#: or less where the preset's ``[tile] max_side`` says: the denoisers'). Tiles are shrunk to the
#: smallest side that covers the image with their overlap, so the largest side allowed gives the
#: fewest pixels fitted twice: with 512 a 1024 px photo took 3 x 3 tiles of 384 px (1.33 MP of
#: tiles, five rounds of two workers), with 576 it takes 2 x 2 of 544 px (1.18 MP, two rounds).
#: ... and, on a CPU, at most the side whose fit the memory estimate (``device.estimate_bytes``)
#: keeps within ``AUTO_TILE_BYTES``: a network heavier than the JPEG preset's gets smaller tiles.
#: A GPU fits its tiles one at a time, so there the bound is the device's free memory.
AUTO_TILE_BYTES = 640 * 2**20
#: A CPU run's memory is its fits (side by side, each in a worker: ``WORKER_BYTES`` plus the
#: fit) and its parent's image planes (the observation, the blended result and the operator's
#: buffers: 0.58 GB for a 24 MP RGB photo, negligible at 1 MP). The planes are paid from the
#: fits' budget (``fit_budget``), so a run stays near ``fits x (WORKER_BYTES +
#: AUTO_TILE_BYTES)`` plus one interpreter whatever the image: a 1 MP photo keeps 544 px jpeg
#: tiles, a 24 MP one gets smaller tiles. Measured on 24 MP denoising with two workers: 384 px
#: tiles (the per-fit bound alone) peaked at 3.25 GB, the parent holding 1.09 of it; with the
#: planes paid, 320 px tiles, 2.93 GB (a 24 MP JPEG: 448 px tiles, 2.74 GB).
#: The first ``FREE_PLANE_BYTES`` of planes (a 5 MP photo's) are not charged, so a 1 MP photo's
#: tiles do not shrink for its 25 MB (its run is far below the bound). Below ``MIN_FIT_BYTES``
#: (beyond ~45 MP of RGB with two workers) the tiles stop shrinking.
FREE_PLANE_BYTES = 128 * 2**20
MIN_FIT_BYTES = AUTO_TILE_BYTES // 4
#: The overlap between neighbouring tiles: a quarter of a small tile, at most 64 px (the blend
#: window's ramp).
TILE_OVERLAP = 64


def tile_overlap(tile: int) -> int:
    return max(8, min(TILE_OVERLAP, tile // 4))


def plan_layout(
    y: np.ndarray,
    operator,
    tile: str | int,
    settings: Settings | None = None,
    device: str = "cpu",
    threads: int | None = None,
):
    """The tiles for this image (in the operator's frame: stored orientation for a JPEG file),
    or None for a whole-image fit. ``tile="auto"`` with ``settings`` sizes the tiles by the
    preset's network on ``device`` (``auto_tile_side``), within what the image's planes leave
    of the budget of the fits ``threads`` runs at once (``fit_budget``)."""
    from dip_cli.tiles import plan_tiles

    if tile == "off":
        return None
    height, width = _frame_size(operator, *operator.output_size(y.shape[0], y.shape[1]))
    multiple = operator.tile_multiple()
    if tile == "auto":
        whole = AUTO_WHOLE if settings is None else min(AUTO_WHOLE, settings.tile.max_side)
        if height <= whole and width <= whole:
            return None
        if settings is not None:
            planes = image_planes_bytes(y, operator)
            budget = fit_budget(planes, _fits_at_once(device, threads))
            tile = auto_tile_side(settings, y.shape[2], multiple, device, budget)
        else:
            tile = AUTO_TILE
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE:
        raise InputError(f"tile must be 'auto', 'off' or a side of at least {MIN_TILE} px, got {tile!r}")
    if height <= tile and width <= tile:
        return None  # one tile is the whole image
    return plan_tiles(height, width, tile, tile_overlap(tile), multiple=multiple)


def auto_tile_side(
    settings: Settings, channels: int, multiple: int = 1, device: str = "cpu", budget: int = AUTO_TILE_BYTES
) -> int:
    """The largest tile side up to the preset's ``[tile] max_side`` (``AUTO_TILE`` unless it
    asks for less; on a grid of ``multiple``, 16 px at least) whose fit the memory estimate keeps
    within the budget: ``budget`` on a CPU, 80% of the free memory on a GPU. The preset's
    network and budget decide the side, not the image."""
    from dip_cli import device as devices

    torch_device = devices.resolve_device(device)
    if torch_device.type != "cpu":
        budget = int(0.8 * devices.available_bytes(torch_device))
    step = max(16, multiple)
    sides = range(settings.tile.max_side // step * step, step, -step)  # largest first
    return next((s for s in sides if _fit_estimate(settings, channels, s) <= budget), max(step, MIN_TILE))


def fit_budget(planes: int, fits: int) -> int:
    """A CPU fit's memory budget when ``fits`` run at once beside image planes of ``planes``
    bytes: the run's ``fits x (WORKER_BYTES + AUTO_TILE_BYTES)`` less the planes (beyond
    ``FREE_PLANE_BYTES``) and the workers' interpreters, shared out (one fit runs in the
    parent: no worker), and at most ``AUTO_TILE_BYTES``, at least ``MIN_FIT_BYTES``."""
    fits = max(1, fits)
    workers = fits if fits > 1 else 0
    charged = max(0, planes - FREE_PLANE_BYTES)
    left = fits * (WORKER_BYTES + AUTO_TILE_BYTES) - charged - workers * WORKER_BYTES
    return int(max(MIN_FIT_BYTES, min(AUTO_TILE_BYTES, left / fits)))


def image_planes_bytes(y: np.ndarray, operator) -> int:
    """What the parent of a tiled run holds for the image while its tiles are fitted: the
    observation, the blended float32 result and the operator's buffers (a mask, a JPEG's
    coefficients)."""
    height, width = operator.output_size(y.shape[0], y.shape[1])
    buffers = operator.buffers() if hasattr(operator, "buffers") else ()
    operator_bytes = sum(b.numel() * b.element_size() for b in buffers)
    return y.size * 4 + height * width * y.shape[2] * 4 + operator_bytes


def _fits_at_once(device: str, threads: int | None) -> int:
    """How many fits a CPU run will put side by side (``parallel_parts``: one per thread of
    its budget); 1 on a GPU."""
    from dip_cli import device as devices

    if devices.resolve_device(device).type != "cpu":
        return 1
    return threads or devices.default_threads(AUTO_TILE * AUTO_TILE)


def _fit_estimate(settings: Settings, channels: int, side: int) -> int:
    from dip_cli import device as devices
    from dip_cli.core import build_network_for

    net, (padded_h, padded_w) = build_network_for(settings, channels, side, side)
    return devices.estimate_bytes(net, settings.input.depth, padded_h, padded_w)


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
    workers: int | None = None,
) -> tuple[np.ndarray, Record]:
    """Restore the overlapping tiles of ``layout``, each its own DIP problem (its own network,
    code z and early stop), and blend them with a smooth window; with ``settings.fit.restarts``
    = R, each tile is the mean of R fits (see the module docstring).

    ``threads`` is the CPU budget of the whole image; ``workers`` parts are fitted at once, each
    with ``threads // workers`` of it (None: ``parallel_parts`` decides; 1: one after another,
    in this process). Memory is bounded by ``workers`` tile fits plus the blended image.
    ``warm_start`` starts each tile from the previous tile's trained weights (not its code z)
    instead of a fresh initialisation, so its parts run one after another. With ``reference``,
    each tile's metrics carry PSNR against its part.
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
    parts = _Parts(
        frame_y, frame_operator, settings, layout, None if reference is None else to_frame(reference),
        seed, device, save_every, run, resuming,
    )  # fmt: skip
    budget = threads or _default_threads(device, layout)
    if workers is None:
        workers = 1 if warm_start else parallel_parts(device, parts, budget)
    if workers < 1 or (warm_start and workers > 1):
        raise ValueError(f"workers must be >= 1 (1 with warm_start), got {workers}")
    run_info = {
        **(info or {}),
        "dip_version": __version__,
        "settings": settings.as_dict(),
        "seed": seed,
        "operator": operator.describe(),
        "observation_size": [y.shape[1], y.shape[0]],
        "tiles": layout.as_dict(),
        "warm_start": warm_start,
        "workers": workers,
        "status": "running",
    }
    # Wall time, over the sessions of a resumed run: side-by-side tiles count once. A session
    # killed with -9 keeps what it wrote when its last tile finished.
    earlier = float((run.read_info() or {}).get("elapsed_seconds", 0.0)) if resuming else 0.0
    session_start = time.perf_counter()

    def elapsed() -> float:
        return round(earlier + time.perf_counter() - session_start, 2)

    def tile_finished(done: int) -> None:
        if run is not None:
            run.write_info({**run_info, "tiles_done": done, "elapsed_seconds": elapsed()})

    if run is not None:
        run.write_info({**run_info, "elapsed_seconds": earlier})
    tiles = _Assembly(parts, Accumulator(layout, y.shape[2]), on_tile=tile_finished)
    todo = []
    for part in range(parts.count):  # a resumed run's finished parts, blended as they are read
        done = parts.finished(part)
        if done is None:
            todo.append(part)
        else:
            tiles.add(part, *done)
    progress = _Progress(observer, _parts_label(name, len(layout), restarts), parts.count, settings.fit.iters)
    progress.start(parts.count - len(todo))
    # Each part gets the threads of its place in the plan, however many parts are left: a
    # resumed run's last part fitted in this process gives the image a run with no stop gives
    # (a different thread count rounds the convolutions differently).
    part_threads = max(1, budget // workers) if workers > 1 else threads
    try:
        if workers > 1 and len(todo) > 1:
            _fit_in_workers(parts, todo, workers, part_threads, progress, tiles)
        else:
            _fit_in_turn(parts, todo, part_threads, progress, tiles, warm_start)
    except Interrupted:
        if run is not None:
            run.write_info(
                {**run_info, "status": "interrupted", "tiles_done": tiles.done, "elapsed_seconds": elapsed()}
            )
        raise
    finally:
        progress.finish()
    pixels = to_display(tiles.accumulator.result())
    record = _tiled_record(tiles.records, layout)
    record.seconds = elapsed()
    if reference is not None:
        record.psnr_reference = psnr(pixels, reference)
        record.ssim_reference = ssim(pixels, reference)
        if baseline is not None:
            record.psnr_reference_input = psnr(baseline, reference)
    if run is not None:
        result = record.as_dict()
        finished = {"status": "finished", "elapsed_seconds": record.seconds, "tile_results": tiles.records}
        run.write_info({**run_info, **finished, "result": result})
    return pixels, record


def parallel_parts(device: str, parts: _Parts, threads: int) -> int:
    """How many parts to fit at once: on a CPU one per thread of the image's budget
    (``threads``), no more than there are parts, and no more than memory holds (each worker's
    fit plus its interpreter and torch, ``WORKER_BYTES``). One where the work is too small to
    pay for starting workers (``MIN_PARALLEL_WORK``), and on a GPU: several processes sharing
    a device are not measured."""
    from dip_cli import device as devices

    torch_device = devices.resolve_device(device)
    if torch_device.type != "cpu" or parts.count < 2 or parts.work() < MIN_PARALLEL_WORK:
        return 1
    fit_bytes = parts.fit_bytes() + WORKER_BYTES
    by_memory = int(0.8 * devices.available_bytes(torch_device) // fit_bytes)
    return max(1, min(threads, parts.count, by_memory))


#: A worker process's memory besides its fit: Python, torch and its libraries, not shared with
#: the parent (measured: a worker that has imported torch holds 280 MB of private memory, a
#: proportional set size of 325 MB).
WORKER_BYTES = 400 * 2**20
#: Starting a worker (a Python with torch) takes 2-3 s here; parts run side by side only when
#: their work, pixels x iterations summed, is at least this: ~20 s of steps on one core.
MIN_PARALLEL_WORK = 20_000_000


def _default_threads(device: str, layout) -> int:
    from dip_cli import device as devices

    largest = max(t.height * t.width for t in layout)
    return devices.default_threads(largest)


def _fit_in_turn(
    parts: _Parts, todo: list[int], threads: int | None, progress, tiles, warm_start: bool
) -> None:
    """The parts one after another in this process (each with the image's threads)."""
    weights = parts.last_weights(todo[0]) if warm_start and todo else None
    for part in todo:
        job = parts.job(part, threads, initial_weights=weights, keep_weights=warm_start)
        pixels, record, weights = _fit_part(job, _PartObserver(progress, part))
        if warm_start and part > 0 and parts.run is not None:  # only the last tile's weights are needed
            parts.run.tile(part - 1).drop_weights()
        progress.done(part)
        tiles.add(part, pixels, record)


def _fit_in_workers(parts: _Parts, todo: list[int], workers: int, threads: int, progress, tiles) -> None:
    """The parts on ``workers`` processes at once (``workers.run_jobs``), ``threads`` each. A
    signal stops them all at a step boundary, each with a checkpoint; a part that fails stops
    the others the same way and its error is raised."""
    import signal

    from dip_cli.device import release_freed_memory
    from dip_cli.errors import FitError
    from dip_cli.workers import run_jobs

    failures: list[BaseException] = []

    def on_done(index: int, future, stopping: bool) -> int:
        part = todo[index]
        if future.cancelled():
            return 0
        error = future.exception()
        if error is None:
            if (result := future.result()) is not None:  # None: not started, a stop was asked
                progress.done(part)
                tiles.add(part, *result)
            return 0
        if isinstance(error, Interrupted):
            return error.signum
        if not stopping:
            failures.append(error)
        return signal.SIGTERM

    jobs = ((_fit_part_in_worker, (parts.job(part, threads), part)) for part in todo)  # made when due
    release_freed_memory()  # this process only waits now: its transient copies go back to the OS
    signum = run_jobs(jobs, workers, on_message=progress.receive, on_done=on_done)
    if failures:
        error = failures[0]
        if isinstance(error, DipError):
            raise error
        raise FitError(f"a tile's worker process failed: {type(error).__name__}: {error}") from error
    if signum:
        name = signal.Signals(signum).name
        finished = f"{tiles.done} of {len(parts.layout)} tiles finished"
        raise Interrupted(f"{name}: {finished}, the ones in progress checkpointed", signum)


@dataclass
class _Part:
    """One fit of one tile, everything a worker process needs to run it (picklable)."""

    y: np.ndarray  # the tile's crop of the observation
    operator: object  # the operator of that crop
    settings: Settings
    reference: np.ndarray | None
    seed: int
    device: str
    threads: int | None
    save_every: int
    run_path: str | None  # its run folder (tiles/NNNN), or None
    name: str
    box: tuple[int, int, int, int]
    finish: bool  # apply operator.finish (one fit per tile); several are averaged, then finished
    initial_weights: dict | None = None
    keep_weights: bool = False  # keep the trained weights (warm start of the next tile)


def _fit_part(job: _Part, observer: Observer) -> tuple[np.ndarray, dict, dict | None]:
    """Fit one part (resuming its checkpoint if it has one); its output, record and, with
    ``keep_weights``, its trained weights. The output replaces the part's checkpoint."""
    tile_run = RunFolder(job.run_path, resume=True, overwrite=True) if job.run_path is not None else None
    trained: dict = {}
    with tile_run if tile_run is not None else contextlib.nullcontext():  # its lock, however it ends
        pixels, record = _restore_whole(
            job.y, job.operator, job.settings, seed=job.seed, device=job.device, threads=job.threads,
            reference=job.reference, baseline=None, run=tile_run, save_every=job.save_every,
            observer=observer, on_snapshot=None, name=job.name, info={"tile": list(job.box)},
            initial_weights=job.initial_weights, trained=trained, snapshots=False, finish=job.finish,
        )  # fmt: skip
        weights = trained["net"] if job.keep_weights else None
        if tile_run is not None:  # the result replaces the tile's checkpoint (tens of MB each)
            tile_run.save_result(pixels, weights)
    return pixels, record.as_dict(), weights


def _fit_part_in_worker(job: _Part, part: int) -> tuple[np.ndarray, dict] | None:
    from dip_cli import workers

    if workers.stopping():  # handed over before the stop: do not start it
        return None
    pixels, record, _ = _fit_part(job, _PartObserver(_SendProgress(), part))
    return pixels, record


@dataclass
class _Parts:
    """The parts of one image: its tiles x ``restarts`` fits, and what they share."""

    y: np.ndarray  # the observation in the operator's frame
    operator: object
    settings: Settings
    layout: object
    reference: np.ndarray | None  # in the operator's frame
    seed: int
    device: str
    save_every: int
    run: RunFolder | None
    resuming: bool

    @property
    def restarts(self) -> int:
        return self.settings.fit.restarts

    @property
    def count(self) -> int:
        return len(self.layout) * self.restarts

    def tile(self, part: int):
        return self.layout.tiles[part // self.restarts]

    def name(self, part: int) -> str:
        tile = self.tile(part).index
        return f"tile {tile}" if self.restarts == 1 else f"tile {tile}, fit {part % self.restarts + 1}"

    def finished(self, part: int) -> tuple[np.ndarray, dict] | None:
        """A resumed run's finished part: its output and record as they were."""
        if self.run is None or not self.resuming:
            return None
        tile_run = self.run.tile(part)
        done = tile_run.load_result()
        return None if done is None else (done, (tile_run.read_info() or {})["result"])

    def last_weights(self, part: int) -> dict | None:
        """Warm start: the weights the part before ``part`` kept, if it finished in an earlier run."""
        if self.run is None or not self.resuming or part == 0:
            return None
        return self.run.tile(part - 1).load_weights()

    def job(self, part: int, threads: int | None, initial_weights=None, keep_weights=False) -> _Part:
        tile = self.tile(part)
        y_tile, operator_tile = self.operator.crop(self.y, *tile.box)
        return _Part(
            y_tile, operator_tile, self.settings,
            None if self.reference is None else self.reference[tile.rows, tile.cols],
            self.seed + part, self.device, threads, self.save_every,
            None if self.run is None else str(self.run.tile(part).path), self.name(part), tile.box,
            finish=self.restarts == 1, initial_weights=initial_weights, keep_weights=keep_weights,
        )  # fmt: skip

    def work(self) -> int:
        """Pixels x iteration budget, summed over the parts."""
        per_fit = sum(t.height * t.width for t in self.layout) * self.settings.fit.iters
        return per_fit * self.restarts

    def fit_bytes(self) -> int:
        """The memory estimate of one fit of the largest tile (``device.estimate_bytes``)."""
        from dip_cli import device as devices
        from dip_cli.core import build_network_for

        tile = max(self.layout, key=lambda t: t.height * t.width)
        net, (padded_h, padded_w) = build_network_for(self.settings, self.y.shape[2], tile.height, tile.width)
        return devices.estimate_bytes(net, self.settings.input.depth, padded_h, padded_w)

    def finish(self, tile, pixels: np.ndarray) -> np.ndarray:
        """The operator's ``finish`` (a JPEG's projection into its quantization box) on a tile."""
        import torch

        y_tile, operator_tile = self.operator.crop(self.y, *tile.box)
        with torch.no_grad():
            finished = operator_tile.finish(_to_tensor(pixels), _to_tensor(y_tile))
        return _to_pixels(finished.clamp(0, 1))


class _Assembly:
    """Parts arrive in any order; each tile is assembled (its fits averaged, then finished) and
    blended in tile order, so the sum, and the image, are the same however the parts ran."""

    def __init__(self, parts: _Parts, accumulator, on_tile=None) -> None:
        self.parts, self.accumulator = parts, accumulator
        self.on_tile = on_tile  # called with the count of tiles blended, after each new one
        self.waiting: dict[int, tuple[np.ndarray, dict]] = {}
        self.records: list[dict] = []

    @property
    def done(self) -> int:
        return len(self.records)

    def add(self, part: int, pixels: np.ndarray, record: dict) -> None:
        self.waiting[part] = (pixels, record)
        restarts = self.parts.restarts
        while self.done < len(self.parts.layout):
            members = range(self.done * restarts, (self.done + 1) * restarts)
            if any(m not in self.waiting for m in members):
                return
            fits = [self.waiting.pop(m) for m in members]
            tile = self.parts.layout.tiles[self.done]
            if restarts == 1:
                pixels, record = fits[0]
            else:  # averaged as fitted, then finished once
                mean = np.mean(np.stack([f[0] for f in fits]), axis=0, dtype=np.float64).astype(np.float32)
                pixels = self.parts.finish(tile, mean)
                record = _combined_record([f[1] for f in fits], [1.0] * restarts, "fits").as_dict()
            self.accumulator.add(tile, pixels)
            self.records.append(record)
            if self.on_tile is not None:
                self.on_tile(self.done)


class _Progress:
    """One progress bar over all parts, however many run at once: the work done is the
    finished parts' budgets plus the running parts' steps, so the ETA counts the parts to fit."""

    def __init__(self, observer: Observer, name: str, count: int, iters: int) -> None:
        self.observer, self.name, self.iters, self.total = observer, name, iters, count * iters
        self.finished = 0
        self.running: dict[int, int] = {}
        self.ended: set[int] = set()

    def start(self, finished: int) -> None:
        self.finished = finished
        self.observer.start(self.name, self.total, finished * self.iters)

    def update(self, part: int, status) -> None:
        # A worker's last progress message can arrive after its part's end (two channels):
        # counted again, it would put the bar past its total.
        if part in self.ended:
            return
        self.running[part] = status.iteration
        done = self.finished * self.iters + sum(self.running.values())
        self.observer.update(replace(status, iteration=done, iters=self.total))

    def resumed(self, part: int, steps: int) -> None:
        """A part continues from its checkpoint: its ``steps`` were done in an earlier session."""
        if steps:
            self.observer.skip(steps)

    def receive(self, message: tuple) -> None:
        """A message from a worker process (``_SendProgress``)."""
        kind, part, value = message
        (self.resumed if kind == "resumed" else self.update)(part, value)

    def done(self, part: int) -> None:
        self.running.pop(part, None)
        self.ended.add(part)
        self.finished += 1

    def finish(self) -> None:
        self.observer.finish()


class _PartObserver(Silent):
    """A part's fit reports into the bar of all parts."""

    def __init__(self, progress, part: int) -> None:
        self.progress, self.part = progress, part

    def start(self, name: str, total: int, done: int) -> None:
        self.progress.resumed(self.part, done)

    def update(self, status) -> None:
        self.progress.update(self.part, status)


class _SendProgress:
    """In a worker process: a part's progress goes to the parent's ``_Progress.receive``."""

    def resumed(self, part: int, steps: int) -> None:
        from dip_cli import workers

        workers.send(("resumed", part, steps))

    def update(self, part: int, status) -> None:
        from dip_cli import workers

        workers.send(("update", part, status))


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
