"""The local executor: a batch's images on this machine, one after another in this process, or
in several worker processes (``workers.run_jobs``), each restoring one image at a time with its
share of the cores."""

from __future__ import annotations

from concurrent.futures import Future

from dip_cli.batch.outcome import BatchObserver, Finished, Outcome, not_started, report_to, restore_guarded
from dip_cli.batch.plan import Item
from dip_cli.progress import Forward


class LocalExecutor:
    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, todo: list[tuple[Item, object]], observer: BatchObserver) -> Finished:
        if self.workers > 1 and len(todo) > 1:
            return _in_workers(todo, self.workers, observer)
        return _in_turn(todo, observer)


def _in_turn(todo, observer: BatchObserver) -> Finished:
    outcomes: dict[Item, Outcome] = {}
    for key, (item, request) in enumerate(todo):
        forward = Forward(lambda message: report_to(observer, message), key)
        outcome = outcomes[item] = restore_guarded(item, request.with_options(observer=forward))
        observer.image_finish(key, outcome)
        if outcome.status == "interrupted":
            return Finished(outcomes, outcome.signum)
    return Finished(outcomes, 0)


def _in_workers(todo, workers: int, observer: BatchObserver) -> Finished:
    from dip_cli.resources import worker_threads
    from dip_cli.workers import run_jobs

    outcomes: dict[Item, Outcome] = {}

    def on_done(index: int, future: Future, stopping: bool) -> int:
        item = todo[index][0]
        outcome = outcomes[item] = _future_outcome(future, item, stopping)
        observer.image_finish(index, outcome)
        return outcome.signum if outcome.status == "interrupted" else 0

    threads = worker_threads(workers)
    jobs = [
        (_worker_restore, (item, request.with_options(threads=request.options.threads or threads), key))
        for key, (item, request) in enumerate(todo)
    ]
    signum = run_jobs(jobs, workers, on_message=lambda message: report_to(observer, message), on_done=on_done)
    return Finished(outcomes, signum)


def _worker_restore(item: Item, request, key: int) -> Outcome:
    from dip_cli import workers

    if workers.stopping():  # queued before the stop: do not start it
        return not_started(item)
    return restore_guarded(item, request.with_options(observer=Forward(workers.send, key)))


def _future_outcome(future: Future, item: Item, stopping: bool) -> Outcome:
    if future.cancelled():
        return not_started(item)
    try:
        return future.result()
    except Exception as exc:  # the worker process died: killed, out of memory, or by our Ctrl-C
        if stopping:
            return not_started(item)
        return Outcome(item, "failed", message=f"worker failed: {type(exc).__name__}: {exc}")
