"""Worker processes: independent fits side by side, stopped cleanly by Ctrl-C, SIGTERM or kill -9.

Used for the images of a local batch (``batch``) and for the tiles and fits of one large photo
(``parts.restore_in_tiles``). Processes, not threads: each has its own torch thread pool, random
generators and signal handling, and a fit needs no change to run in one.

- ``run_jobs`` submits calls to a pool of spawned processes (fork after torch has started its
  thread pools can hang) and hands each finished job to ``on_done``. Not ``forkserver``, though
  its workers start faster and share torch's pages (104 MB a worker against 330 MB, measured):
  each worker it forks holds the server's "alive" pipe, so after a kill -9 of dip the server
  outlives it, the workers' parent (the server) never dies, and they run on as orphans
  (``test_kill_9_of_the_parent_stops_its_workers_with_a_checkpoint`` failed that way).
- A job reports progress with ``send(message)``; the parent receives each message in
  ``on_message`` while it waits.
- Workers run in their own process groups, so a terminal's Ctrl-C reaches only the parent,
  which then sends the same signal once to each running worker: its fit checkpoints at the
  next step boundary and stops. A signal that lands outside a fit (between two jobs, or while a
  job builds its network) is kept for the fit (``fit.request_stop``), which stops after its
  first step, instead of killing the worker mid-read of the pool's queue. Jobs not started yet
  are cancelled (``stopping()`` is true in a worker once a stop was asked, for a job that was
  already handed to it).
- On Linux each worker also gets SIGTERM when the parent dies, even by kill -9, so an orphaned
  fit checkpoints and exits instead of running on while holding its run folder's lock. (The
  signal is consumed by the fit's checkpoint, so a worker that finds itself orphaned after a
  job exits at once: it would otherwise wait forever for the next one.)
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

Job = tuple[Callable[..., Any], tuple]  # a module-level function (spawn pickles it by name) and its arguments


class _Caught:
    signum = 0  # the first SIGINT/SIGTERM received, 0 while none was


@contextlib.contextmanager
def caught_stop_signals():
    """While workers run, Ctrl-C and SIGTERM only set ``.signum``: the parent then stops the
    workers at a step boundary (they checkpoint) instead of dying mid-write."""
    caught = _Caught()

    def on_signal(signum, frame):
        caught.signum = caught.signum or signum

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_jobs(
    jobs: Iterable[Job],
    workers: int,
    *,
    on_message: Callable[[Any], None],
    on_done: Callable[[int, Future, bool], int],
) -> int:
    """Run ``jobs`` on ``workers`` processes. ``on_done(index, future, stopping)`` sees each job
    as it ends (or is cancelled) and returns a signal number to stop the others with (0: go
    on). Returns the signal that stopped the run (a caught SIGINT/SIGTERM or one ``on_done``
    asked for), 0 if none did.

    Jobs are taken from ``jobs`` only as workers free up (one queued ahead of each), so a
    generator of jobs holds the inputs of a few at a time, not all of them.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue, stop_event = context.Queue(), context.Event()
    upcoming = enumerate(jobs)
    with (
        caught_stop_signals() as caught,
        ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(queue, stop_event)
        ) as pool,
    ):
        futures: dict[Future, int] = {}

        def submit_while_room() -> None:
            while not caught.signum and len(futures) < 2 * workers:
                index, job = next(upcoming, (None, None))
                if job is None:
                    return
                fn, args = job
                with _main_not_rerun():  # a worker is started, if one is, within submit
                    futures[pool.submit(_call, fn, args)] = index

        submit_while_room()
        while futures:
            finished, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
            drain(queue, on_message)
            for future in finished:
                asked = on_done(futures.pop(future), future, bool(caught.signum))
                caught.signum = caught.signum or asked  # the first signal names the stop
            if caught.signum and not stop_event.is_set():
                stop_event.set()
                _interrupt_workers(pool, set(futures), caught.signum)
            submit_while_room()
        drain(queue, on_message)
    return caught.signum


@contextlib.contextmanager
def _main_not_rerun():
    """Spawned workers do not import the caller's ``__main__`` while the pool starts them.

    ``spawn`` re-imports the main script in every child, so a script calling
    ``dip_cli.jpeg(big_photo)`` at top level, without an ``if __name__ == "__main__":`` guard,
    would run again in each worker (and fail there). The jobs are functions of dip's own
    modules and need nothing from the caller's script, so it is hidden from the children while
    they are started (the main module's ``__file__`` and ``__spec__``, for the moment of a
    submit).
    """
    import sys

    main = sys.modules.get("__main__")
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if main and name in main.__dict__}
    try:
        for name in saved:
            if name == "__spec__":
                main.__spec__ = None
            else:
                del main.__dict__[name]
        yield
    finally:
        main.__dict__.update(saved)


def drain(queue, on_message: Callable[[Any], None]) -> None:
    """Hand every message waiting in ``queue`` to ``on_message``."""
    import queue as queues

    while True:
        try:
            message = queue.get_nowait()
        except queues.Empty:
            return
        on_message(message)


# --- in the worker processes ---------------------------------------------------------------------

# Set once per worker by _init_worker.
_messages = None
_stop_event = None
_parent = 0


def send(message: Any) -> None:
    """From a job: a progress message for the parent's ``on_message``."""
    _messages.put(message)


def stopping() -> bool:
    """From a job: true once the parent has asked the workers to stop (do not start)."""
    return _stop_event is not None and _stop_event.is_set()


def _init_worker(queue, stop_event) -> None:
    import warnings

    global _messages, _stop_event, _parent
    _messages, _stop_event, _parent = queue, stop_event, os.getppid()
    os.setpgrp()  # a terminal's Ctrl-C goes to the parent only; it forwards exactly one signal
    import dip_cli.fit  # noqa: F401  (now, not inside the signal handler, which needs it)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _keep_for_the_fit)
    _die_with_parent()
    warnings.showwarning = _show_warning_line


def _keep_for_the_fit(signum, frame) -> None:
    """A stop signal outside a fit (a fit installs its own handler): kept for the job's fit,
    which then checkpoints and stops. Raising KeyboardInterrupt here instead could land in the
    pool's own code (reading the next job) and kill the worker, which breaks the whole pool and
    takes the other workers' checkpoints with it."""
    if os.getppid() != _parent:  # orphaned (SIGTERM on the parent's death) with no fit to save
        os._exit(128 + signum)
    from dip_cli.fit import request_stop  # imported by _init_worker already

    request_stop(signum)


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    try:
        return fn(*args)
    finally:
        if os.getppid() != _parent:  # orphaned: the job ended (checkpointed) on the parent's death
            os._exit(128 + signal.SIGTERM)  # nobody will read its result or send another job


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when its parent dies (kill -9 included); the fit loop turns
    it into a checkpoint and a clean stop. Elsewhere a worker finishes its job first."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before prctl: nobody will collect this work
            os.kill(os.getpid(), signal.SIGTERM)


def _show_warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    import sys

    print(f"note: {message}", file=sys.stderr, flush=True)


def _interrupt_workers(pool: ProcessPoolExecutor, pending: set[Future], signum: int) -> None:
    """Cancel jobs not started; ask running workers to checkpoint and stop."""
    for future in pending:
        future.cancel()
    processes = getattr(pool, "_processes", None) or {}  # no public API for a pool's processes
    for process in list(processes.values()):
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)  # the fit loop defers it to a step boundary
