"""Worker processes: a stop that reaches a worker outside any fit is not lost and breaks nothing."""

from __future__ import annotations

import os
import signal
import time

from dip_cli.workers import run_jobs, send
from tests.conftest import real_crop


def _wait_then_fit(preset: str, seconds: float) -> str:
    """In a worker: report, wait outside any fit (where the parent's stop lands), then fit."""
    from dip_cli import denoise
    from dip_cli.errors import Interrupted

    send("waiting")
    time.sleep(seconds)
    try:
        denoise(real_crop("coffee", 24), preset=preset, iters=2000, stop="fixed", threads=1)
    except Interrupted as stopped:
        return str(stopped)
    return "finished"


def test_a_stop_between_jobs_is_kept_for_the_fit_which_stops_after_one_step(tiny_preset):
    """Ctrl-C while a worker is not fitting used to raise KeyboardInterrupt there; in the pool's
    own code that kills the worker and breaks the pool (the other workers lose their fits)."""
    results = []

    def on_message(message):
        if message == "waiting":
            os.kill(os.getpid(), signal.SIGINT)  # the parent forwards it to the worker

    def on_done(index, future, stopping):
        results.append(future.result())  # raises what the job raised
        return 0

    jobs = [(_wait_then_fit, (str(tiny_preset), 3.0))]
    signum = run_jobs(jobs, 1, on_message=on_message, on_done=on_done)
    assert signum == signal.SIGINT
    assert len(results) == 1 and results[0].startswith("SIGINT at iteration 1"), results
