"""shared.lockstep: a blocking call waited for at most a given time, on its owner's thread."""

from __future__ import annotations

import contextvars
import threading

import pytest

from shared.lockstep import LateError, Lockstep

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_calls_run_in_order_with_their_owners_context_and_their_failures_raised() -> None:
    WHO.set("owner")
    worker = Lockstep("test")
    try:
        assert worker.run(WHO.get, 5) == "owner"
        assert worker.run(threading.current_thread, 5).name == "test"
        missing: dict[str, int] = {}
        with pytest.raises(KeyError):
            worker.run(lambda: missing["key"], 5)
        assert worker.run(lambda: 2 + 2, 5) == 4  # a failure does not end the thread
    finally:
        worker.stop()


def test_a_call_given_up_on_ends_by_itself_and_nothing_runs_after_it() -> None:
    release, ended, ran = threading.Event(), threading.Event(), []
    worker = Lockstep("test")

    def blocked() -> None:
        release.wait(60)
        ended.set()

    with pytest.raises(LateError):
        worker.run(blocked, 0.05)
    with pytest.raises(LateError):  # refused at once: the thread is still in the call given up on
        worker.run(lambda: ran.append(1), 5)
    release.set()
    assert ended.wait(60)
    threads = [t for t in threading.enumerate() if t.name == "test"]
    for thread in threads:
        thread.join(60)
    assert (ran, [t.is_alive() for t in threads]) == ([], [False] * len(threads))


def test_no_time_left_is_late_without_a_call() -> None:
    ran: list[int] = []
    worker = Lockstep("test")
    try:
        with pytest.raises(LateError):
            worker.run(lambda: ran.append(1), 0)
        assert worker.run(lambda: len(ran), 5) == 0
    finally:
        worker.stop()
