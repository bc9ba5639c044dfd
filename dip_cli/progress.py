"""Where progress goes: the ``Observer`` a fit reports to, and the messages that carry it across
processes (tile workers, batch workers, Ray tasks), named by one set of ``Event``s.

A fit calls ``start`` once, ``update`` with each ``fit.Status``, and ``finish``; ``resumed`` tells
a display that steps it was told of were done in an earlier session (a tiled run's parts
resumed from their checkpoints), so a display that times the session leaves them out of its
rate. In a worker process the observer is a ``Forward``, which turns each call into a message
``(event, key, payload)``; the parent hands each message to ``deliver``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol


class Event(StrEnum):
    START = "start"  # payload: (name, total steps, steps already done)
    UPDATE = "update"  # payload: a fit.Status
    RESUMED = "resumed"  # payload: steps done in an earlier session, found after the start
    NOTE = "note"  # payload: a warning's text (from a Ray worker, whose warnings the driver shows)


Message = tuple[Event, int, Any]  # (event, key: the part or image it concerns, payload)


class Observer(Protocol):
    """Progress sink: the CLI passes a Rich display; tiles and batches forward to theirs."""

    def start(self, name: str, total: int, done: int) -> None: ...
    def update(self, status) -> None: ...
    def resumed(self, steps: int) -> None: ...
    def finish(self) -> None: ...


class Silent:
    """An observer that shows nothing (the default)."""

    def start(self, name: str, total: int, done: int) -> None:
        pass

    def update(self, status) -> None:
        pass

    def resumed(self, steps: int) -> None:
        pass

    def finish(self) -> None:
        pass


class CallbackObserver(Silent):
    """Progress as a function of each ``fit.Status`` (the API's ``progress=callable``)."""

    def __init__(self, callback: Callable) -> None:
        self.callback = callback

    def update(self, status) -> None:
        self.callback(status)


class Forward(Silent):
    """An observer that sends each call on as a message under ``key`` (a worker's fit, reporting
    to its parent's display through ``send``: a queue, a pipe, a Ray actor)."""

    def __init__(self, send: Callable[[Message], None], key: int) -> None:
        self.send, self.key = send, key

    def start(self, name: str, total: int, done: int) -> None:
        self.send((Event.START, self.key, (name, total, done)))

    def update(self, status) -> None:
        self.send((Event.UPDATE, self.key, status))

    def resumed(self, steps: int) -> None:
        self.send((Event.RESUMED, self.key, steps))


def deliver(message: Message, *, start=None, update=None, resumed=None, note=None) -> None:
    """Hand a ``Forward``'s message to the handler of its event, called with (key, payload);
    an event without a handler is dropped."""
    event, key, payload = message
    handler = {Event.START: start, Event.UPDATE: update, Event.RESUMED: resumed, Event.NOTE: note}[
        Event(event)
    ]
    if handler is not None:
        handler(key, payload)
