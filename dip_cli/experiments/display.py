"""What a person sees of an experiment: a progress bar while it runs, then its figures and verdicts."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dip_cli.experiments.common import Result


class ProgressBar:
    """A Rich bar on stderr; ``update(label, completed, total)`` is the experiments' progress hook."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self._task = self._progress.add_task("starting", total=None)

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def update(self, label: str, completed: int, total: int) -> None:
        self._progress.update(self._task, description=label, completed=completed, total=total)


def figures_table(result: Result) -> Table:
    table = Table(title=f"dip experiment {result.name}: measured ({result.seconds:.0f} s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in result.figures.items():
        table.add_row(name, _number(value))
    return table


def verdicts_table(result: Result) -> Table:
    table = Table(title="findings", show_lines=True)
    for column in ("finding", "the paper's claim", "measured", "threshold"):
        table.add_column(column, justify="right" if column in ("measured", "threshold") else "left")
    table.add_column("verdict", no_wrap=True)
    for v in result.verdicts:
        verdict = "[green]held[/]" if v.held else "[red]not held[/]"
        table.add_row(v.finding, v.claim, v.measured_text(), v.threshold_text(), verdict)
    return table


def _number(value) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "never"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)
