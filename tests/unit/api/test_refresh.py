"""The re-read schedule that the catalogue and the genre names share (api/refresh.py)."""

from __future__ import annotations

import threading
import time

import pytest

from api.refresh import Refresh


def test_due_first_then_after_the_interval_and_a_failed_read_waits_too() -> None:
    refresh = Refresh(0.05)
    reads: list[int] = []
    refresh.run_if_due(lambda: reads.append(1))
    refresh.run_if_due(lambda: reads.append(2))  # not due yet
    assert reads == [1] and not refresh.due()

    def fail() -> None:
        raise RuntimeError("away")

    time.sleep(0.06)
    with pytest.raises(RuntimeError):
        refresh.run_if_due(fail)
    assert not refresh.due()  # the failed attempt counts: not retried at once


def test_zero_reads_once_and_tried_restarts_the_wait() -> None:
    once = Refresh(0)
    reads: list[int] = []
    for n in range(3):
        once.run_if_due(lambda n=n: reads.append(n))
    assert reads == [0]
    later = Refresh(3600)
    later.tried()  # the owner read on its own
    assert not later.due()


def test_one_caller_reads_while_the_others_go_on_or_wait() -> None:
    refresh = Refresh(3600)
    started, release = threading.Event(), threading.Event()
    reads: list[str] = []

    def slow() -> None:
        reads.append("slow")
        started.set()
        release.wait(5)

    reader = threading.Thread(target=refresh.run_if_due, args=(slow,))
    reader.start()
    started.wait(5)
    refresh.run_if_due(lambda: reads.append("skipped"))  # goes on at once
    waiter = threading.Thread(target=refresh.run_if_due, args=(lambda: reads.append("waited"),), kwargs={"wait": True})
    waiter.start()
    release.set()
    reader.join(5)
    waiter.join(5)
    assert reads == ["slow"]  # the waiter found the read done and did not read again
