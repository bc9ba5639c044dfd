"""What a person sees: the live progress display, the summary table, the JSON result."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence

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


def _new_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )


def _status_text(status) -> str:
    """Loss, PSNR vs input (and reference), and the early-stop state."""
    stats = f"loss {status.loss:.2e}  PSNR(in) {status.psnr_input:5.2f}"
    if status.psnr_reference is not None:
        stats += f"  PSNR(ref) {status.psnr_reference:5.2f}"
    if status.selected_iteration is not None:
        stats += f"  best@{status.selected_iteration}"
    elif math.isnan(status.wmv):
        stats += "  ES: filling window"
    return stats


LOG_EVERY_SECONDS = 60.0
RATE_WINDOW_SECONDS = 900.0


def _clock_text(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LogLines:
    """Progress as plain lines, for a stderr that is not a terminal (``2> log``, nohup, a job
    scheduler): a live bar draws nothing there until the end, which for a 12 MP photo is
    hours of silence. One line when the work starts, then at most one every ``every``
    seconds: steps done of the total, elapsed time and an ETA from the rate over the last
    ``window`` seconds (15 minutes: over a run of tiles that is steadier than the bar's last
    30 s, and unlike the session's mean it catches up within 15 minutes when other work
    starts or stops beside the run)."""

    def __init__(
        self,
        console: Console,
        name: str,
        total: int,
        done: int,
        *,
        unit: str = "steps",
        every: float = LOG_EVERY_SECONDS,
        window: float = RATE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console, self.name, self.total, self.every, self.clock = console, name, total, every, clock
        self.window = window
        self.started = self.last_line = clock()
        self.samples: deque[tuple[float, int]] = deque([(self.started, done)])  # (time, steps done)
        note = f"resumed at {done} of {total}" if done else f"starting, {total} {unit}"
        self._print(f"{name}: {note}")

    def resumed(self, steps: int) -> None:
        """``steps`` done in an earlier session (a tile resumed from its checkpoint): not this
        session's work, so not in its rate."""
        self.samples = deque((t, done + steps) for t, done in self.samples)

    def update(self, done: int, stats: str = "", *, force: bool = False) -> None:
        now = self.clock()
        self.samples.append((now, done))
        while len(self.samples) > 1 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()  # the oldest kept is the newest at least a window old
        if not force and now - self.last_line < self.every:
            return
        self.last_line = now
        self._print(self.line(done, stats, now))

    def line(self, done: int, stats: str, now: float) -> str:
        elapsed = now - self.started
        since, done_then = self.samples[0]
        rate = (done - done_then) / (now - since) if now > since else 0.0
        eta = _clock_text((self.total - done) / rate) if rate > 0 else "?"
        percent = 100.0 * done / self.total if self.total else 100.0
        parts = [f"{self.name}: {done}/{self.total} ({percent:.0f}%)", stats]
        parts += [f"elapsed {_clock_text(elapsed)}", f"eta {eta}"]
        return "  ".join(p for p in parts if p)

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


class ProgressDisplay:
    """A Rich progress bar on stderr: iteration, loss, PSNR vs input, ETA, early-stop state;
    plain lines (``LogLines``) where stderr is not a terminal."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self._log: LogLines | None = None

    def start(self, name: str, total: int, done: int) -> None:
        if not self.enabled:
            return
        if not self.console.is_terminal:
            self._log = LogLines(self.console, name, total, done)
            return
        self._progress = _new_progress(self.console)
        self._progress.start()
        note = f"resumed at {done}" if done else "starting"
        self._task = self._progress.add_task(name, total=total, completed=done, stats=note)

    def resumed(self, steps: int) -> None:
        """Steps done before this session, found after the start (a tiled run's parts resumed
        from their checkpoints). The bar's own rate forgets them within its 30 s window."""
        if self._log is not None:
            self._log.resumed(steps)

    def update(self, status) -> None:
        if self._log is not None:
            self._log.update(status.iteration, _status_text(status))
        if self._progress is None:
            return
        self._progress.update(self._task, completed=status.iteration, stats=_status_text(status))

    def finish(self) -> None:
        self._log = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def summary_lines(results: Sequence) -> str:
    """What happened to each image, as lines that fit any terminal width: the figures, then
    the output and run folder paths whole (a path cut to fit, "samples/astrona…", would not
    tell a user where the file is)."""
    lines = []
    for r in results:
        row = r.as_dict()
        lines.append(f"[bold green]restored[/] {r.input} in {row['seconds']:.0f} s")
        lines.append(
            f"  kept iteration {row['selected_iteration']} of {row['iterations']} ({row['stop_reason']})"
            + (f", resumed at {row['resumed_from']}" if row["resumed_from"] else "")
        )
        figures = f"  PSNR vs input {row['psnr_input']:.2f} dB"
        if row.get("psnr_reference") is not None:
            figures += f"; vs reference {_reference_row_cell(row).replace(chr(10), ', ')}"
        lines.append(figures)
        lines.append(f"  output: {r.output}")
        lines.append(f"  run folder: {r.run_dir}")
    return "\n".join(lines)


def results_json(results: Sequence) -> str:
    payload = [r.as_dict() for r in results]
    return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, default=_json_default)


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


class BatchDisplay:
    """Live display of a batch on stderr: images done/total with ETA, one bar per image running;
    plain lines (``LogLines``) where stderr is not a terminal."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._progress: Progress | None = None
        self._overall = None
        self._images: dict[int, object] = {}
        self._log: LogLines | None = None
        self._image_logs: dict[int, LogLines] = {}
        self._finished = 0

    def batch_start(self, total: int, done: int) -> None:
        if not self.enabled:
            return
        if not self.console.is_terminal:
            self._log, self._finished = LogLines(self.console, "images", total, done, unit="images"), done
            return
        self._progress = _new_progress(self.console)
        self._progress.start()
        note = f"{done} already restored" if done else ""
        self._overall = self._progress.add_task("images", total=total, completed=done, stats=note)

    def image_start(self, key: int, name: str, total: int, done: int) -> None:
        if self._log is not None:
            self._image_logs[key] = LogLines(self.console, f"  {name}", total, done)
        if self._progress is None:
            return
        note = f"resumed at {done}" if done else "starting"
        self._images[key] = self._progress.add_task(f"  {name}", total=total, completed=done, stats=note)

    def image_resumed(self, key: int, steps: int) -> None:
        if key in self._image_logs:
            self._image_logs[key].resumed(steps)

    def image_update(self, key: int, status) -> None:
        if key in self._image_logs:
            self._image_logs[key].update(status.iteration, _status_text(status))
        if self._progress is None or key not in self._images:
            return
        self._progress.update(self._images[key], completed=status.iteration, stats=_status_text(status))

    def image_finish(self, key: int, outcome) -> None:
        if self._log is not None:
            self._finish_line(key, outcome)
        if self._progress is None:
            return
        if key in self._images:
            self._progress.remove_task(self._images.pop(key))
        if key >= 0 and outcome.status != "pending":
            self._progress.advance(self._overall)
        if outcome.status == "failed":
            self._progress.console.print(f"[red]failed:[/] {_failure_line(outcome)}", highlight=False)

    def _finish_line(self, key: int, outcome) -> None:
        self._image_logs.pop(key, None)
        if outcome.status == "failed":
            line = f"failed: {_failure_line(outcome)}"
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if key >= 0 and outcome.status != "pending":
            self._finished += 1
            which = f"{outcome.item.relative.as_posix()} {outcome.status}"
            self._log.update(self._finished, which, force=True)

    def batch_finish(self) -> None:
        self._log, self._image_logs = None, {}
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


_STATUS_STYLE = {
    "restored": "green",
    "skipped": "dim",
    "failed": "red",
    "interrupted": "yellow",
    "pending": "yellow",
}


def batch_table(report) -> Table:
    """One row per image: status, kept/run iterations, time, PSNR; why failures failed.

    Sized for an 80-column terminal: the image's path inside the batch is never cut (a long
    one folds onto a second line); the stop reason and SSIM are in summary.csv.
    """
    totals = ", ".join(
        f"{report.count(s)} {s}"
        for s in ("restored", "skipped", "failed", "interrupted", "pending")
        if report.count(s)
    )
    table = Table(title=f"dip batch: {totals} ({report.seconds:.0f}s)")
    # The path inside the batch (as mirrored under -o) names the file in full; long ones wrap
    # onto a second line rather than being cut with an ellipsis.
    table.add_column("image", overflow="fold", ratio=1)
    for column in ("status", "kept/run", "time", "PSNR in", "vs ref (input)"):
        table.add_column(column, justify="right")
    for outcome in report.outcomes:
        r = outcome.row()
        style = _STATUS_STYLE.get(outcome.status, "")
        table.add_row(
            outcome.item.relative.as_posix(),
            f"[{style}]{outcome.status}[/]" if style else outcome.status,
            _cell(r["selected_iteration"], r["iterations"], "{}/{}"),
            _cell(r["seconds"], None, "{:.0f}s"),
            _cell(r["psnr_input"], None, "{:.2f}"),
            _cell(r["psnr_reference"], None, "{:.2f}")
            + _cell(r["psnr_reference_input"], None, " ({:.2f})").replace("-", ""),
        )
    failures = [o for o in report.outcomes if o.status == "failed"]
    if failures:
        table.caption = "\n".join(_failure_line(o) for o in failures)
        table.caption_justify = "left"
    return table


def _failure_line(outcome) -> str:
    """The error message, prefixed by the file unless the message already names it."""
    name = str(outcome.item.input)
    return outcome.message if name in outcome.message else f"{name}: {outcome.message}"


def _cell(value, second, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value, second) if second is not None else fmt.format(value)


def _reference_row_cell(row: dict) -> str:
    value = row.get("psnr_reference")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.2f} dB"
    if row.get("psnr_reference_input") is not None:
        text += f" (input {row['psnr_reference_input']:.2f})"
    if row.get("ssim_reference") is not None:
        text += f"\nSSIM {row['ssim_reference']:.3f}"
    return text
