"""Restoring an image as parts: overlapping tiles of a large photo, several fits of one image.

A tiled run cuts the output into overlapping tiles (``tiles.plan_tiles``), fits each as its
own DIP problem (``solve.solve`` on the tile's crop of the observation, with its own network,
code z and early stop) and blends them (``tiles.Accumulator``). With ``settings.fit.restarts``
= R each tile is fitted R times from independent seeds and the fits' outputs averaged: the
``-avg3`` presets. An untiled image with R > 1 is one tile that is the whole image. Each fit is
a *part*; part ``p = tile * R + member`` has the seed ``seed + p``. Tiles are cut in the
operator's frame (``Operator.stored_frame``: a JPEG file as stored, on its block grid).

Parts are independent, so on a CPU several are fitted at once, each in its own worker process
(``workers.run_jobs``) with one thread: a 384 px jpeg tile's step took 136 ms on one thread,
two such fits side by side 145 ms each, while one fit on both threads took 141 ms (the CLI's
passive waits) or 98 ms (spinning) on this 2-core CPU. On a GPU parts run one after another.
How large the tiles are and how many run at once is ``resources``' policy.

Resuming: with a run folder, each part has its own (``tiles/NNNN/``): a finished part keeps
its output, a part in progress its checkpoint, so a killed run loses at most the steps since
each running part's last checkpoint. Outputs are blended in tile order whatever order the
parts finish in, so a run gives the same image bit for bit however it was interrupted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import numpy as np

from dip_cli import resources
from dip_cli.errors import DipError, Interrupted
from dip_cli.options import RunOptions, parse_tile
from dip_cli.progress import Forward, Observer, Silent, deliver
from dip_cli.provenance import Clock, Record, combine, fingerprint, versions
from dip_cli.run_folder import RunFolder
from dip_cli.settings import AUTO_TILE, Settings
from dip_cli.solve import Part, solve
from dip_cli.tiles import Accumulator, TileLayout, plan_tiles


def plan_layout(
    y: np.ndarray,
    operator,
    tile: str | int,
    settings: Settings | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> TileLayout | None:
    """The tiles for this image (in the operator's frame: stored orientation for a JPEG file),
    or None for a whole-image fit. ``tile="auto"`` with ``settings`` sizes the tiles by the
    preset's network on ``device`` (``resources.auto_tile_side``), within what the image's planes
    leave of the budget of the fits ``threads`` runs at once (``resources.fit_budget``)."""
    tile = parse_tile(tile)
    if tile == "off":
        return None
    height, width = operator.stored_size(*operator.output_size(y.shape[0], y.shape[1]))
    multiple = operator.tile_multiple()
    if tile == "auto":
        whole = (
            resources.AUTO_WHOLE if settings is None else min(resources.AUTO_WHOLE, settings.tile.max_side)
        )
        if height <= whole and width <= whole:
            return None
        tile = AUTO_TILE
        if settings is not None:
            planes = resources.image_planes_bytes(y, operator)
            budget = resources.fit_budget(planes, resources.fits_at_once(device, threads))
            tile = resources.auto_tile_side(settings, y.shape[2], multiple, device, budget)
    if height <= tile and width <= tile:
        return None  # one tile is the whole image
    return plan_tiles(height, width, tile, resources.tile_overlap(tile), multiple=multiple)


def whole_layout(y: np.ndarray, operator) -> TileLayout:
    """One tile that is the whole image (in the operator's frame): several fits of it are
    ``restore_in_tiles``' parts, checkpointed and resumed like tiles."""
    height, width = operator.stored_size(*operator.output_size(y.shape[0], y.shape[1]))
    multiple = operator.tile_multiple()
    side = -(-max(height, width) // multiple) * multiple  # on the grid, so one tile covers it all
    return plan_tiles(height, width, side, resources.tile_overlap(side), multiple=multiple)


def restore_in_tiles(
    y: np.ndarray,
    operator,
    settings: Settings,
    layout: TileLayout,
    options: RunOptions = RunOptions(),
    *,
    run: RunFolder | None = None,
    reference: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    info: dict | None = None,
    warm_start: bool = False,
    workers: int | None = None,
) -> tuple[np.ndarray, Record]:
    """Restore the overlapping tiles of ``layout``, each its own DIP problem (its own network,
    code z and early stop), and blend them with a smooth window; with ``settings.fit.restarts``
    = R, each tile is the mean of R fits (see the module docstring).

    ``options.threads`` is the CPU budget of the whole image; ``workers`` parts are fitted at
    once, each with ``threads // workers`` of it (None: ``resources.parallel_fits`` decides; 1:
    one after another, in this process). Memory is bounded by ``workers`` tile fits plus the
    blended image. ``warm_start`` starts each tile from the previous tile's trained weights (not
    its code z) instead of a fresh initialisation, so its parts run one after another. ``run`` is
    the opened run folder (``options.run_dir``'s); with ``reference``, each tile's metrics carry
    PSNR against its part.
    """
    if warm_start and settings.fit.restarts > 1:
        raise ValueError("warm_start starts each fit from the last one: it defeats restarts > 1")
    frame = operator.stored_frame()
    parts = _Parts.start(frame, y, settings, layout, options, run, reference, warm_start)
    budget = options.threads or resources.default_threads(max(t.height * t.width for t in layout))
    if workers is None:
        workers = 1 if warm_start else parts.parallel(budget)
    if workers < 1 or (warm_start and workers > 1):
        raise ValueError(f"workers must be >= 1 (1 with warm_start), got {workers}")
    log = _TiledLog(
        run, parts.resuming, {**(info or {}), **_run_info(y, operator, settings, options, layout)}
    )
    log.write("running", log.clock.earlier, warm_start=warm_start, workers=workers)
    tiles = _Assembly(parts, Accumulator(layout, y.shape[2]), on_tile=log.tile_finished)
    todo = [part for part in range(parts.count) if not tiles.add_finished(part)]
    label = _parts_label(options.name, len(layout), parts.restarts)
    progress = PartsProgress(options.observer or Silent(), label, parts.count, settings.fit.iters)
    progress.start(parts.count - len(todo))
    # Each part gets the threads of its place in the plan, however many parts are left: a
    # resumed run's last part fitted in this process gives the image a run with no stop gives
    # (a different thread count rounds the convolutions differently).
    part_threads = max(1, budget // workers) if workers > 1 else options.threads
    try:
        if workers > 1 and len(todo) > 1:
            _fit_in_workers(parts, todo, workers, part_threads, progress, tiles)
        else:
            _fit_in_turn(parts, todo, part_threads, progress, tiles, warm_start)
    except Interrupted:
        log.write("interrupted", tiles_done=tiles.done)
        raise
    finally:
        progress.finish()
    pixels = frame.to_display(tiles.accumulator.result())
    record = combine(tiles.records, [t.height * t.width for t in layout], "tiles")
    record.seconds = log.clock.elapsed()
    record.score(pixels, reference, baseline)
    log.write("finished", record.seconds, tile_results=tiles.records, result=record.as_dict())
    return pixels, record


def _run_info(y: np.ndarray, operator, settings: Settings, options: RunOptions, layout: TileLayout) -> dict:
    """What a tiled run's run.json records of the problem and how it is run."""
    return {
        **versions(),
        "settings": settings.as_dict(),
        "options": options.as_dict(),
        "seed": options.seed,
        "operator": operator.describe(),
        "observation_size": [y.shape[1], y.shape[0]],
        "tiles": layout.as_dict(),
    }


class _TiledLog:
    """A tiled run's run.json, rewritten at each change; its ``seconds`` are the wall time over
    the sessions of a resumed run (side-by-side tiles count once). A session killed with -9 keeps
    what it wrote when its last tile finished."""

    def __init__(self, run: RunFolder | None, resuming: bool, info: dict) -> None:
        self.run, self.info = run, info
        earlier = (run.read_info() or {}) if resuming else {}
        # "elapsed_seconds": the name in run folders of dip 0.2.0 and before
        self.clock = Clock(earlier.get("seconds", earlier.get("elapsed_seconds", 0.0)))

    def write(self, status: str, seconds: float | None = None, **fields) -> None:
        self.info.update(fields)
        if self.run is not None:
            seconds = self.clock.elapsed() if seconds is None else seconds
            self.run.write_info({**self.info, "status": status, "seconds": seconds})

    def tile_finished(self, done: int) -> None:
        self.write("running", tiles_done=done)


def _fit_in_turn(
    parts: _Parts, todo: list[int], threads: int | None, progress, tiles, warm_start: bool
) -> None:
    """The parts one after another in this process (each with the image's threads)."""
    weights = parts.last_weights(todo[0]) if warm_start and todo else None
    for part in todo:
        job = parts.job(part, threads, Part(start_weights=weights, keep_weights=warm_start, snapshots=False,
                                            finish=parts.restarts == 1))  # fmt: skip
        pixels, record, weights = _fit_part(job, Forward(progress.receive, part))
        if warm_start and part > 0 and parts.run is not None:  # only the last tile's weights are needed
            parts.run.tile(part - 1).drop_weights()
        progress.done(part)
        tiles.add(part, pixels, record)


def _fit_in_workers(parts: _Parts, todo: list[int], workers: int, threads: int, progress, tiles) -> None:
    """The parts on ``workers`` processes at once (``workers.run_jobs``), ``threads`` each. A
    signal stops them all at a step boundary, each with a checkpoint; a part that fails stops
    the others the same way and its error is raised."""
    import signal

    from dip_cli.errors import FitError
    from dip_cli.process import release_freed_memory
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

    part = Part(snapshots=False, finish=parts.restarts == 1)
    jobs = ((_fit_part_in_worker, (parts.job(p, threads, part), p)) for p in todo)  # made when due
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
class _Job:
    """One fit of one tile, everything a worker process needs to run it (picklable)."""

    y: np.ndarray  # the tile's crop of the observation
    operator: object  # the operator of that crop
    settings: Settings
    reference: np.ndarray | None
    options: RunOptions  # its seed, threads and name; no observer
    run_path: str | None  # its run folder (tiles/NNNN), or None
    box: tuple[int, int, int, int]
    part: Part


def _fit_part(job: _Job, observer: Observer) -> tuple[np.ndarray, dict, dict | None]:
    """Fit one part (resuming its checkpoint if it has one); its output, record and, with
    ``keep_weights``, its trained weights. The output replaces the part's checkpoint."""
    tile_run = RunFolder(job.run_path, resume=True, overwrite=True) if job.run_path is not None else None
    with tile_run if tile_run is not None else contextlib.nullcontext():  # its lock, however it ends
        solution = solve(
            job.y, job.operator, job.settings, job.options.replace(observer=observer), run=tile_run,
            reference=job.reference, info={"tile": list(job.box)}, part=job.part,
        )  # fmt: skip
        if tile_run is not None:  # the result replaces the tile's checkpoint (tens of MB each)
            tile_run.save_result(solution.pixels, solution.weights)
    return solution.pixels, solution.record.as_dict(), solution.weights


def _fit_part_in_worker(job: _Job, part: int) -> tuple[np.ndarray, dict] | None:
    from dip_cli import workers

    if workers.stopping():  # handed over before the stop: do not start it
        return None
    pixels, record, _ = _fit_part(job, Forward(workers.send, part))
    return pixels, record


@dataclass
class _Parts:
    """The parts of one image: its tiles x ``restarts`` fits, and what they share."""

    y: np.ndarray  # the observation in the operator's frame
    operator: object
    settings: Settings
    layout: TileLayout
    reference: np.ndarray | None  # in the operator's frame
    options: RunOptions
    run: RunFolder | None
    resuming: bool

    @classmethod
    def start(cls, frame, y, settings, layout, options, run, reference, warm_start) -> _Parts:
        """The parts of ``y`` in the operator's ``frame``; with a run folder, its resume contract
        applied (the plan's fingerprint, warm start and layout must match an earlier run's)."""
        frame_y = frame.to_stored(y)
        for tile in layout:  # a tile that cannot be a problem of its own fails before any work
            frame.operator.crop(frame_y, *tile.box)
        stamp = fingerprint(frame_y, frame.operator, settings, options.seed)
        plan = {"fingerprint": stamp, "warm_start": warm_start, **layout.as_dict()}
        resuming = run.start_tiles(plan) if run is not None else False
        frame_reference = None if reference is None else frame.to_stored(reference)
        return cls(frame_y, frame.operator, settings, layout, frame_reference, options, run, resuming)

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

    def parallel(self, threads: int) -> int:
        """How many parts to fit at once (``resources.parallel_fits``)."""
        work = sum(t.height * t.width for t in self.layout) * self.settings.fit.iters * self.restarts
        largest = max(self.layout, key=lambda t: t.height * t.width)
        channels = self.y.shape[2]
        return resources.parallel_fits(
            self.options.device,
            self.count,
            work,
            threads,
            self.settings,
            channels,
            (largest.height, largest.width),
        )

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

    def job(self, part: int, threads: int | None, how: Part) -> _Job:
        tile = self.tile(part)
        y_tile, operator_tile = self.operator.crop(self.y, *tile.box)
        options = self.options.replace(seed=self.options.seed + part, threads=threads, name=self.name(part),
                                       observer=None, run_dir=None)  # fmt: skip
        return _Job(
            y_tile, operator_tile, self.settings,
            None if self.reference is None else self.reference[tile.rows, tile.cols], options,
            None if self.run is None else str(self.run.tile(part).path), tile.box, how,
        )  # fmt: skip

    def finish(self, tile, pixels: np.ndarray) -> np.ndarray:
        """The operator's ``finish`` (a JPEG's projection into its quantization box) on a tile."""
        import torch

        from dip_cli.operators import to_pixels, to_tensor

        y_tile, operator_tile = self.operator.crop(self.y, *tile.box)
        with torch.no_grad():
            finished = operator_tile.finish(to_tensor(pixels), to_tensor(y_tile))
        return to_pixels(finished.clamp(0, 1))


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

    def add_finished(self, part: int) -> bool:
        """A resumed run's part that finished earlier is blended as it is read; False if none."""
        done = self.parts.finished(part)
        if done is not None:
            self.add(part, *done)
        return done is not None

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
                record = combine([f[1] for f in fits], [1.0] * restarts, "fits").as_dict()
            self.accumulator.add(tile, pixels)
            self.records.append(record)
            if self.on_tile is not None:
                self.on_tile(self.done)


class PartsProgress:
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

    def receive(self, message) -> None:
        """A part's progress (``progress.Forward``'s messages, from this process or a worker): its
        start says how many of its steps an earlier session did."""
        deliver(message, start=lambda part, started: self.resumed(part, started[2]), update=self.update)

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
            self.observer.resumed(steps)

    def done(self, part: int) -> None:
        self.running.pop(part, None)
        self.ended.add(part)
        self.finished += 1

    def finish(self) -> None:
        self.observer.finish()


def _parts_label(name: str, tiles: int, restarts: int) -> str:
    fits = f"{restarts} fits" if restarts > 1 else ""
    if tiles == 1:
        return f"{name} ({fits})"
    return f"{name} ({tiles} tiles{' × ' + fits if fits else ''})"
