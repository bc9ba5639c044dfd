"""What a person sees: the live progress display, the summary table, the JSON result."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class ProgressDisplay:
    """A Rich progress bar on stderr: iteration, loss, PSNR vs input, ETA, early-stop state."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None

    def start(self, name: str, total: int, done: int) -> None:
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        note = f"resumed at {done}" if done else "starting"
        self._task = self._progress.add_task(name, total=total, completed=done, stats=note)

    def update(self, status) -> None:
        if self._progress is None:
            return
        stats = f"loss {status.loss:.2e}  PSNR(in) {status.psnr_input:5.2f}"
        if status.psnr_reference is not None:
            stats += f"  PSNR(ref) {status.psnr_reference:5.2f}"
        if status.selected_iteration is not None:
            stats += f"  best@{status.selected_iteration}"
        elif math.isnan(status.wmv):
            stats += "  ES: filling window"
        self._progress.update(self._task, completed=status.iteration, stats=stats)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def summary_table(results: Sequence) -> Table:
    """One row per image; 'kept/run' is the iteration whose output was saved / steps run."""
    table = Table(title="dip: restored")
    table.add_column("image → output", no_wrap=False)
    for column in ("kept/run", "stop", "time", "PSNR in", "vs reference"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r.input.name} → {r.output}",
            f"{r.selected_iteration}/{r.iterations}",
            r.stop_reason,
            f"{r.seconds:.0f}s",
            f"{r.psnr_input:.2f}",
            _reference_cell(r),
        )
    return table


def _reference_cell(result) -> str:
    if result.psnr_reference is None:
        return "-"
    text = f"{result.psnr_reference:.2f} dB"
    if result.psnr_reference_input is not None:
        text += f" (input {result.psnr_reference_input:.2f})"
    if result.ssim_reference is not None and not math.isnan(result.ssim_reference):
        text += f"\nSSIM {result.ssim_reference:.3f}"
    return text


def results_json(results: Sequence) -> str:
    payload = [r.as_dict() for r in results]
    return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, default=_json_default)


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
