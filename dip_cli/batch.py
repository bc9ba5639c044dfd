"""Many images: find them, name their outputs, skip finished ones, isolate failures, summarise.

A batch is a plan (``plan_batch``: which files, where each result goes) and a run
(``run_batch``: restore each one with ``restore.restore``). The rules a user relies on:

- Folders are searched for image files (``io.READ_EXTENSIONS``; ``--glob`` narrows the names;
  ``--recursive`` descends). dip's own outputs (``*.restored.*``, ``*.dip/`` run folders, the
  ``-o`` folder) and hidden files are never taken as inputs.
- With ``-o DIR`` the output tree mirrors the input tree: ``photos/a/b.jpg`` -> ``DIR/a/b.png``.
  Without it, each result goes beside its input as ``STEM.restored.png``. Inputs that would
  share an output name (``x.png`` and ``x.jpg``) both get their extension in it (``x_png``,
  ``x_jpg``), so names never collide and stay the same on every rerun.
- A rerun skips images whose output exists (unless ``--overwrite``) and resumes images whose
  run was interrupted, from their checkpoints. Outputs are written atomically, so an existing
  output is always a finished one.
- One bad image (unreadable, too large, a failed write) is reported and the batch goes on;
  Ctrl-C stops the batch after checkpointing the images in progress.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

from dip_cli.errors import DipError, InputError, Interrupted, signal_exit_code
from dip_cli.io import READ_EXTENSIONS, check_output_path, write_text_atomic
from dip_cli.run_folder import RunFolder

#: Exit code of a batch in which at least one image failed (the others were restored).
EXIT_SOME_FAILED = 3

SUMMARY_COLUMNS = (
    "input",
    "output",
    "status",
    "iterations",
    "selected_iteration",
    "stop_reason",
    "seconds",
    "psnr_input",
    "psnr_reference",
    "ssim_reference",
    "psnr_reference_input",
    "message",
)


@dataclass(frozen=True)
class Item:
    """One image of a batch: where it is, where its result and run folder go."""

    input: Path
    relative: Path  # its path under the folder it was found in (for mirroring and references)
    output: Path
    run_dir: Path


@dataclass
class Plan:
    items: list[Item]
    ignored: list[Path]  # files in the folders that are not images (or not matching --glob)
    summary_dir: Path  # where summary.csv / summary.json go


@dataclass
class Outcome:
    """What happened to one image: restored, skipped (already done), failed, interrupted, pending."""

    item: Item
    status: str
    result: object | None = None  # a RestoreResult when restored (or read back when skipped)
    message: str = ""
    signum: int = 0  # interrupted: by which signal (SIGINT, SIGTERM)

    def row(self) -> dict:
        data = {"input": str(self.item.input), "output": str(self.item.output), "status": self.status}
        result = _result_dict(self.result)
        for column in SUMMARY_COLUMNS[3:-1]:
            data[column] = result.get(column)
        data["message"] = self.message
        return data


@dataclass
class BatchReport:
    outcomes: list[Outcome]
    ignored: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: int = 0  # the signal that stopped the batch (0: it ran to the end)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + self.interrupted  # 130 for Ctrl-C, 143 for SIGTERM
        return EXIT_SOME_FAILED if self.count("failed") else 0


# --- planning ------------------------------------------------------------------------------------


def plan_batch(
    inputs: Iterable[Path],
    *,
    output_dir: Path | None,
    recursive: bool = False,
    pattern: str | None = None,
) -> Plan:
    """Expand files and folders into a list of images with collision-free output names."""
    inputs = list(inputs)
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"-o {output_dir} is a file; with several inputs or a folder, -o names a folder")
    if output_dir is not None and not output_dir.exists() and output_dir.suffix.lower() in READ_EXTENSIONS:
        raise InputError(
            f"-o {output_dir} looks like a file name; with several inputs or a folder, -o names a folder"
        )
    if output_dir is not None:
        check_output_path(output_dir / "summary.csv", "the batch's output folder")
    folders = [p for p in inputs if p.is_dir()]
    found: list[tuple[Path, Path]] = []  # (path, relative path in the output tree)
    ignored: list[Path] = []
    for path in inputs:
        if not path.exists():
            raise InputError(f"{path} does not exist")
        if path.is_dir():
            # One folder mirrors into -o directly; several keep their names to stay apart.
            prefix = Path(path.resolve().name) if len(folders) > 1 else Path()
            for file in _scan(path, recursive, pattern, output_dir, ignored):
                found.append((file, prefix / file.relative_to(path)))
        else:
            found.append((path, Path(path.name)))
    found = _unique_by_file(found)
    if not found:
        where = ", ".join(str(p) for p in inputs)
        hint = "" if recursive else " (add --recursive to search subfolders)"
        raise InputError(f"no images found in {where}{hint}")
    items = _name_outputs(found, output_dir)
    _check_no_input_overwritten(items)
    summary_dir = output_dir or _common_folder([item.input for item in items])
    return Plan(items, ignored, summary_dir)


def _scan(
    folder: Path, recursive: bool, pattern: str | None, output_dir: Path | None, ignored: list[Path]
) -> list[Path]:
    skip_dir = output_dir.resolve() if output_dir is not None else None
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if recursive
            and not d.startswith(".")
            and not d.endswith(".dip")
            and (root_path / d).resolve() != skip_dir
        )
        for name in sorted(names):
            path = root_path / name
            if name.startswith(".") or ".restored." in name:
                continue  # hidden files, dip's own temp files and outputs
            is_image = path.suffix.lower() in READ_EXTENSIONS
            relative = path.relative_to(folder).as_posix().lower()
            matches = pattern is None or any(
                fnmatch.fnmatch(text, pattern.lower()) for text in (name.lower(), relative)
            )
            if is_image and matches:
                files.append(path)
            elif not is_image:
                ignored.append(path)
    return files


def _unique_by_file(found: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The same file named twice (directly and through its folder) is restored once."""
    seen: set[Path] = set()
    unique = []
    for path, relative in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((path, relative))
    return unique


def _name_outputs(found: list[tuple[Path, Path]], output_dir: Path | None) -> list[Item]:
    """Each input's output stem: its own, unless another input in the same output folder would
    get the same name; those get their extension added (``x.png`` -> ``x_png``), again until
    no two collide (``x_png.bmp`` next to ``x.png`` becomes ``x_png_bmp``). The names depend
    only on the set of inputs, so a rerun finds the same outputs and run folders."""

    def folder(path: Path, relative: Path) -> Path:
        return (output_dir / relative.parent) if output_dir is not None else path.parent

    stems = [path.stem for path, _ in found]
    extended = [False] * len(found)
    while True:
        groups: dict[tuple[Path, str], list[int]] = {}
        for i, (path, relative) in enumerate(found):
            groups.setdefault((folder(path, relative).resolve(), stems[i].lower()), []).append(i)
        collisions = [members for members in groups.values() if len(members) > 1]
        if not collisions:
            break
        for members in collisions:
            fresh = [i for i in members if not extended[i]]
            for i in fresh:
                stems[i] = f"{stems[i]}_{found[i][0].suffix.lstrip('.').lower()}"
                extended[i] = True
            if not fresh:  # same name and extension up to case (X.PNG, x.png): number them
                for n, i in enumerate(sorted(members, key=lambda i: str(found[i][0]))[1:], start=2):
                    stems[i] = f"{stems[i]}_{n}"
    items = []
    for (path, relative), stem in zip(found, stems, strict=True):
        base = folder(path, relative)
        name = f"{stem}.png" if output_dir is not None else f"{stem}.restored.png"
        items.append(Item(path, relative, base / name, base / f"{stem}.dip"))
    return items


def _check_no_input_overwritten(items: list[Item]) -> None:
    inputs = {item.input.resolve() for item in items}
    for item in items:
        if item.output.resolve() in inputs:
            raise InputError(
                f"the output {item.output} would replace the input of the same name; "
                "dip never overwrites its inputs: give -o another folder"
            )


def _common_folder(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))


def find_reference(reference_dir: Path, item: Item) -> Path | None:
    """The clean image for ``item``: the same relative path, or the same stem with any extension."""
    exact = reference_dir / item.relative
    if exact.is_file():
        return exact
    for suffix in READ_EXTENSIONS:
        candidate = (reference_dir / item.relative).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


# --- running -------------------------------------------------------------------------------------


class BatchObserver:
    """What a batch run reports to (the CLI's display; tests may pass their own)."""

    def batch_start(self, total: int, done: int) -> None: ...
    def image_start(self, key: int, name: str, total: int, done: int) -> None: ...
    def image_update(self, key: int, status) -> None: ...
    def image_skip(self, key: int, steps: int) -> None: ...
    def image_finish(self, key: int, outcome: Outcome) -> None: ...
    def batch_finish(self) -> None: ...


def run_batch(
    plan: Plan,
    template,  # RestoreRequest without input/output/run_dir
    *,
    reference_dir: Path | None = None,
    workers: int | None = None,
    observer: BatchObserver | None = None,
    ray=None,  # batch_ray.RayOptions: run the images as Ray tasks instead of local processes
) -> BatchReport:
    """Restore every image of ``plan``; failures are recorded, never raised (except Ctrl-C)."""
    from dip_cli.restore import check_request

    # A bad preset or device fails once, not once per image (on Ray the workers have the devices).
    check_request(template if ray is None else replace(template, device="auto"))
    if ray is not None and workers is not None:
        raise InputError("--workers is for local batches; on Ray give --cpus-per-image / --gpus-per-image")
    if ray is not None:
        from dip_cli.batch_ray import check_ray_installed

        check_ray_installed()  # before any image, and before the display starts
    observer = observer or BatchObserver()
    started = time.perf_counter()
    outcomes = {item: done for item in plan.items if (done := _already_done(item, template.overwrite))}
    remaining = [item for item in plan.items if item not in outcomes]
    if workers is None:
        workers = 1 if ray is not None else default_workers(template.device, len(remaining))
    parallel = ray is None and workers > 1 and len(remaining) > 1
    if parallel and template.threads is None:
        from dip_cli.device import cpu_cores

        template = replace(template, threads=max(1, cpu_cores() // workers))
    todo = [(item, _request_for(item, template, reference_dir)) for item in remaining]
    observer.batch_start(len(plan.items), len(outcomes))
    for outcome in outcomes.values():
        observer.image_finish(-1, outcome)
    try:
        if ray is not None and todo:
            from dip_cli.batch_ray import run_on_ray

            interrupted = run_on_ray(todo, ray, template, observer, outcomes)
        elif parallel:
            interrupted = _run_parallel(todo, workers, observer, outcomes)
        else:
            interrupted = _run_sequential(todo, observer, outcomes)
    finally:
        observer.batch_finish()  # the display ends even when Ray refuses the batch up front
    ordered = [outcomes.get(item) or Outcome(item, "pending", message="not started") for item in plan.items]
    return BatchReport(ordered, plan.ignored, round(time.perf_counter() - started, 2), interrupted)


def default_workers(device: str, images: int) -> int:
    """CPU: one worker per core (up to 4), each with its share of the threads; GPU: one.

    Measured on 2 cores (README, benchmarks/batch_throughput.py): at 128 px two threads make one
    image only 1.14-1.19x faster, while two one-thread workers restored 1.84x more images per
    minute. On a GPU several processes would share one device; that is not measured, so one.
    """
    from dip_cli.device import cpu_cores, resolve_device

    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(images, cpu_cores(), 4))


def _already_done(item: Item, overwrite: bool) -> Outcome | None:
    if overwrite or not item.output.exists():
        return None
    return Outcome(item, "skipped", _finished_result(item), "already restored (--overwrite to redo)")


def _finished_result(item: Item) -> dict | None:
    """The figures of the earlier run, read back from its run.json, for the summary."""
    info = RunFolder(item.run_dir).read_info() or {}
    result = info.get("result")
    if isinstance(result, dict) and info.get("output") == str(item.output):
        return {"input": info.get("input"), "output": info["output"], **result}
    return None


def _request_for(item: Item, template, reference_dir: Path | None):
    reference = find_reference(reference_dir, item) if reference_dir is not None else None
    # An interrupted run of this image continues from its checkpoint; a finished one was skipped.
    resume = not template.overwrite and RunFolder(item.run_dir).resumable
    return replace(
        template,
        input=item.input,
        output=item.output,
        run_dir=item.run_dir,
        reference=reference,
        resume=resume,
    )


def _restore_guarded(item: Item, request, observer) -> Outcome:
    """Restore one image; any failure of that image becomes an Outcome, never an exception."""
    from dip_cli.restore import restore

    try:
        result = restore(request, observer)
    except KeyboardInterrupt as exc:  # outside the fit loop's deferral (SIGTERM: Terminated)
        return _interrupted(item, exc)
    except Interrupted as exc:
        return _interrupted(item, exc)
    except DipError as exc:
        return Outcome(item, "failed", message=str(exc))
    except OSError as exc:  # disk full, permission denied: this image failed, the batch goes on
        return Outcome(item, "failed", message=f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        if os.environ.get("DIP_DEBUG"):
            raise
        return Outcome(item, "failed", message=f"unexpected {type(exc).__name__}: {exc} (a bug in dip?)")
    return Outcome(item, "restored", result, "resumed" if result.record.resumed_from else "")


class _Forward:
    """restore()'s per-image observer, sent on under the image's key as (kind, key, payload)."""

    def __init__(self, send: Callable[[tuple], None], key: int) -> None:
        self.send, self.key = send, key

    def start(self, name: str, total: int, done: int) -> None:
        self.send(("start", self.key, (name, total, done)))

    def update(self, status) -> None:
        self.send(("update", self.key, status))

    def skip(self, steps: int) -> None:
        self.send(("skip", self.key, steps))

    def finish(self) -> None:
        pass


def _dispatch(observer: BatchObserver, message: tuple) -> None:
    kind, key, payload = message
    if kind == "start":
        observer.image_start(key, *payload)
    elif kind == "skip":
        observer.image_skip(key, payload)
    else:
        observer.image_update(key, payload)


def _interrupted(item: Item, exc: BaseException) -> Outcome:
    signum = signal_exit_code(exc) - 128
    return Outcome(
        item, "interrupted", message="interrupted; rerun the same command to resume", signum=signum
    )


def _run_sequential(todo, observer: BatchObserver, outcomes: dict) -> int:
    """Returns the signal that stopped the batch, 0 if none did."""
    for key, (item, request) in enumerate(todo):
        forward = _Forward(lambda message: _dispatch(observer, message), key)
        outcome = outcomes[item] = _restore_guarded(item, request, forward)
        observer.image_finish(key, outcome)
        if outcome.status == "interrupted":
            return outcome.signum
    return 0


def _run_parallel(todo, workers: int, observer: BatchObserver, outcomes: dict) -> int:
    """Several worker processes (``workers.run_jobs``), each restoring one image at a time with its
    share of the cores. Returns the signal that stopped the batch, 0 if none did."""
    from dip_cli.workers import run_jobs

    def on_done(index: int, future: Future, stopping: bool) -> int:
        item = todo[index][0]
        outcome = outcomes[item] = _future_outcome(future, item, stopping)
        observer.image_finish(index, outcome)
        return outcome.signum if outcome.status == "interrupted" else 0

    jobs = [(_worker_restore, (item, request, key)) for key, (item, request) in enumerate(todo)]
    return run_jobs(jobs, workers, on_message=lambda message: _dispatch(observer, message), on_done=on_done)


def _worker_restore(item: Item, request, key: int) -> Outcome:
    from dip_cli import workers

    if workers.stopping():  # queued before the stop: do not start it
        return Outcome(item, "pending", message="not started")
    return _restore_guarded(item, request, _Forward(workers.send, key))


def _future_outcome(future: Future, item: Item, stopping: bool) -> Outcome:
    if future.cancelled():
        return Outcome(item, "pending", message="not started")
    try:
        return future.result()
    except Exception as exc:  # the worker process died: killed, out of memory, or by our Ctrl-C
        if stopping:
            return Outcome(item, "pending", message="not started")
        return Outcome(item, "failed", message=f"worker failed: {type(exc).__name__}: {exc}")


# --- summary -------------------------------------------------------------------------------------


def write_summary(report: BatchReport, folder: Path) -> tuple[Path, Path]:
    """summary.csv (one row per image) and summary.json (rows, totals, ignored files)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [_clean_row(outcome.row()) for outcome in report.outcomes]
    csv_path, json_path = folder / "summary.csv", folder / "summary.json"
    write_text_atomic(csv_path, _csv_text(rows))
    totals = {s: report.count(s) for s in ("restored", "skipped", "failed", "interrupted", "pending")}
    payload = {
        "images": rows,
        "totals": totals,
        "ignored": [str(p) for p in report.ignored],
        "seconds": report.seconds,
        "exit_code": report.exit_code,
    }
    write_text_atomic(json_path, json.dumps(payload, indent=2, default=str))
    return csv_path, json_path


def _clean_row(row: dict) -> dict:
    """NaN as empty, floats to 4 decimals (PSNR to 1e-4 dB, seconds to 0.1 ms)."""
    return {
        k: (None if math.isnan(v) else round(v, 4)) if isinstance(v, float) else v for k, v in row.items()
    }


def _csv_text(rows: list[dict]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _result_dict(result) -> dict:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    return result.as_dict()
