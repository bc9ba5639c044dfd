"""What happened to each image of a batch, and what the batch reports to while it runs.

One image's failure (unreadable, too large, a failed write) becomes its ``Outcome`` and the
batch goes on; Ctrl-C or SIGTERM stops the batch after checkpointing the images in progress
(``interrupted``), and a rerun resumes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from dip_cli.batch.plan import Item, finished_result
from dip_cli.errors import DipError, Interrupted, signal_exit_code
from dip_cli.progress import Message, deliver

#: Exit code of a batch in which at least one image failed (the others were restored).
EXIT_SOME_FAILED = 3

#: summary.csv's columns: the image, its status, the figures of its record, a message.
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


@dataclass
class Outcome:
    """What happened to one image: restored, skipped (already done), failed, interrupted, pending."""

    item: Item
    status: str
    result: dict | None = None  # its figures (``RestoreResult.as_dict``, or read back when skipped)
    message: str = ""
    signum: int = 0  # interrupted: by which signal (SIGINT, SIGTERM)

    def row(self) -> dict:
        data = {"input": str(self.item.input), "output": str(self.item.output), "status": self.status}
        result = self.result or {}
        for column in SUMMARY_COLUMNS[3:-1]:
            data[column] = result.get(column)
        data["message"] = self.message
        return data


@dataclass
class BatchReport:
    outcomes: list[Outcome]
    ignored: list = field(default_factory=list)
    seconds: float = 0.0
    interrupted: int = 0  # the signal that stopped the batch (0: it ran to the end)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + self.interrupted  # 130 for Ctrl-C, 143 for SIGTERM
        return EXIT_SOME_FAILED if self.count("failed") else 0


class BatchObserver:
    """What a batch run reports to (the CLI's display; tests may pass their own)."""

    def batch_start(self, total: int, done: int) -> None: ...
    def image_start(self, key: int, name: str, total: int, done: int) -> None: ...
    def image_update(self, key: int, status) -> None: ...
    def image_resumed(self, key: int, steps: int) -> None: ...
    def image_finish(self, key: int, outcome: Outcome) -> None: ...
    def batch_finish(self) -> None: ...


class Finished(NamedTuple):
    """What an executor ran: each image's outcome (those not reached have none), and the signal
    that stopped the batch, 0 if none did."""

    outcomes: dict[Item, Outcome]
    signum: int


class Executor(Protocol):
    """Runs a batch's images: ``todo`` holds (item, request) pairs whose key (for the observer's
    calls) is their index; each outcome goes to ``observer.image_finish`` as it is known."""

    def run(self, todo: list[tuple[Item, Any]], observer: BatchObserver) -> Finished: ...


def report_to(observer: BatchObserver, message: Message) -> None:
    """An image's progress message (``progress.Forward``, key = the image's) to the batch's observer."""
    deliver(
        message,
        start=lambda key, started: observer.image_start(key, *started),
        update=lambda key, status: observer.image_update(key, status),
        resumed=lambda key, steps: observer.image_resumed(key, steps),
    )


def already_done(item: Item, overwrite: bool) -> Outcome | None:
    """A finished image (its output exists) is skipped, unless the user asks to redo it."""
    if overwrite or not item.output.exists():
        return None
    return Outcome(item, "skipped", finished_result(item), "already restored (--overwrite to redo)")


def restore_guarded(item: Item, request) -> Outcome:
    """Restore one image; any failure of that image becomes an Outcome, never an exception."""
    from dip_cli.restore import restore

    try:
        result = restore(request)
    except KeyboardInterrupt as exc:  # outside the fit loop's deferral (SIGTERM: Terminated)
        return interrupted(item, exc)
    except Interrupted as exc:
        return interrupted(item, exc)
    except DipError as exc:
        return Outcome(item, "failed", message=str(exc))
    except OSError as exc:  # disk full, permission denied: this image failed, the batch goes on
        return Outcome(item, "failed", message=f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        if os.environ.get("DIP_DEBUG"):
            raise
        return Outcome(item, "failed", message=f"unexpected {type(exc).__name__}: {exc} (a bug in dip?)")
    return Outcome(item, "restored", result.as_dict(), "resumed" if result.record.resumed_from else "")


def interrupted(item: Item, exc: BaseException) -> Outcome:
    signum = signal_exit_code(exc) - 128
    return Outcome(
        item, "interrupted", message="interrupted; rerun the same command to resume", signum=signum
    )


def not_started(item: Item) -> Outcome:
    return Outcome(item, "pending", message="not started")
