"""Many images: find them, name their outputs, skip finished ones, isolate failures, summarise.

A batch is a plan (``plan.plan_batch``: which files, where each result goes, which runs resume)
and a run (``run_batch``: restore each one with ``restore.restore``, through an executor). The
executors share one interface (``outcome.Executor``: ``run(todo, observer) -> Finished``) and are
chosen from ``EXECUTORS``: ``local`` (this process, or worker processes side by side) and ``ray``
(each image a Ray task, on this machine or a cluster; Ray is imported only there).

One bad image (unreadable, too large, a failed write) is reported and the batch goes on;
Ctrl-C stops the batch after checkpointing the images in progress; a rerun skips the finished
images and resumes the others.
"""

from __future__ import annotations

import time
from pathlib import Path

from dip_cli.batch.outcome import (
    EXIT_SOME_FAILED,
    SUMMARY_COLUMNS,
    BatchObserver,
    BatchReport,
    Executor,
    Outcome,
    already_done,
    not_started,
)
from dip_cli.batch.plan import Item, Plan, find_reference, plan_batch, request_for, resumes
from dip_cli.batch.summary import write_summary
from dip_cli.errors import InputError

__all__ = [
    "EXECUTORS",
    "EXIT_SOME_FAILED",
    "SUMMARY_COLUMNS",
    "BatchObserver",
    "BatchReport",
    "Item",
    "Outcome",
    "Plan",
    "find_reference",
    "plan_batch",
    "resumes",
    "run_batch",
    "write_summary",
]


def _local(workers: int | None, ray, template, remaining: int) -> Executor:
    from dip_cli.batch.local import LocalExecutor
    from dip_cli.resources import default_workers

    return LocalExecutor(workers or default_workers(template.options.device, remaining))


def _ray(workers: int | None, ray, template, remaining: int) -> Executor:
    from dip_cli.batch.ray_tasks import RayExecutor

    if workers is not None:
        raise InputError("--workers is for local batches; on Ray give --cpus-per-image / --gpus-per-image")
    return RayExecutor(ray)


#: How a batch's images run: by name, the executor's maker (workers, Ray options, the request
#: template, the count of images to restore) -> ``outcome.Executor``.
EXECUTORS = {"local": _local, "ray": _ray}


def run_batch(
    plan: Plan,
    template,  # restore.RestoreRequest without input/output; its options without run_dir
    *,
    reference_dir: Path | None = None,
    workers: int | None = None,
    observer: BatchObserver | None = None,
    ray=None,  # batch.ray_tasks.RayOptions: run the images as Ray tasks instead of local processes
) -> BatchReport:
    """Restore every image of ``plan``; failures are recorded, never raised (except Ctrl-C)."""
    from dip_cli.restore import check_request

    # A bad preset or device fails once, not once per image (on Ray the workers have the devices).
    check_request(template if ray is None else template.with_options(device="auto"))
    outcomes = {item: done for item in plan.items if (done := already_done(item, template.options.overwrite))}
    remaining = [item for item in plan.items if item not in outcomes]
    executor = EXECUTORS["local" if ray is None else "ray"](workers, ray, template, len(remaining))
    if ray is not None:
        from dip_cli.batch.ray_tasks import check_ray_installed

        check_ray_installed()  # before any image, and before the display starts
    observer = observer or BatchObserver()
    started = time.perf_counter()
    todo = [(item, request_for(item, template, reference_dir)) for item in remaining]
    observer.batch_start(len(plan.items), len(outcomes))
    for outcome in outcomes.values():
        observer.image_finish(-1, outcome)
    try:
        finished = executor.run(todo, observer)
    finally:
        observer.batch_finish()  # the display ends even when Ray refuses the batch up front
    outcomes.update(finished.outcomes)
    ordered = [outcomes.get(item) or not_started(item) for item in plan.items]
    return BatchReport(ordered, plan.ignored, round(time.perf_counter() - started, 2), finished.signum)
