"""Blocking calls waited for at most a given time: each runs on a daemon thread of its own
caller's, one call at a time, and a call given up on is left to end by itself.

An AWS call's timeouts are per socket read (botocore has no timeout for a whole call), so a
silent upstream holds whoever waits on it for the client's read timeout: a stream's next event,
or a guardrail check, could keep a function past its deadline. ``Lockstep.run`` hands the call
to the thread and waits until the deadline instead; the call's thread is the one left waiting.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class LateError(Exception):
    """The call did not end within its wait (it goes on, on the thread nothing waits for)."""


class Lockstep:
    """A thread that runs one call at a time for its owner, with the owner's context (its trace)."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
        self._busy = False  # a call given up on has not ended: nothing else runs after it
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._serve,), name=name, daemon=True).start()

    def run(self, work: Callable[[], T], seconds: float) -> T:
        """``work()``'s result or its exception, waited for at most ``seconds``: LateError then,
        and this Lockstep runs nothing more."""
        if self._busy or seconds <= 0:
            raise LateError
        self._calls.put(work)
        try:
            result, error = self._answers.get(timeout=seconds)
        except queue.Empty:
            self._busy = True
            self.stop()
            raise LateError from None
        if error is not None:
            raise error
        return cast(T, result)

    def stop(self) -> None:
        """No more calls: the thread ends once its current one (if any) does."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (work := self._calls.get()) is not None:
            try:
                self._answers.put((work(), None))
            except BaseException as error:  # the owner's to raise
                self._answers.put((None, error))
