"""Helpers of the tests of restoring in parts (test_parts, test_parts_side_by_side)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from dip_cli.options import RunOptions
from dip_cli.parts import restore_in_tiles
from dip_cli.progress import CallbackObserver
from dip_cli.provenance import Record

RUN_OPTIONS = {f.name for f in fields(RunOptions)}


def fixed(settings, iters: int):
    return settings.with_overrides(iters=iters, stop="fixed")


def in_tiles(y, operator, settings, layout, **options) -> tuple[np.ndarray, Record]:
    """``parts.restore_in_tiles`` with ``options`` that are ``RunOptions``' fields made into one."""
    run_options = RunOptions(**{k: options.pop(k) for k in list(options) if k in RUN_OPTIONS})
    return restore_in_tiles(y, operator, settings, layout, run_options, **options)


class SkipRecorder(CallbackObserver):
    """Records what a display that times the session is told was done before it."""

    def __init__(self) -> None:
        super().__init__(lambda status: None)
        self.skipped: list[int] = []

    def resumed(self, steps: int) -> None:
        self.skipped.append(steps)
