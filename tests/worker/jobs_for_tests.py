"""Job functions for the worker tests, at module level so RQ can import them by path."""

from __future__ import annotations

from typing import Any

import gevent
from rq import get_current_job

from dialer.worker import ShutdownRequested, shutdown_requested

# In-process tests only: how many jobs run at this moment, and the most seen at once.
running = 0
peak = 0


def nap(seconds: float, value: Any = None) -> Any:
    """Sleep cooperatively, then return ``value``."""
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        gevent.sleep(seconds)
    finally:
        running -= 1
    return value


def boom(message: str) -> None:
    raise ValueError(message)


def count_attempt_then_boom(key: str) -> None:
    """Record one attempt in Redis, then fail (for Retry)."""
    job = get_current_job()
    assert job is not None
    job.connection.incr(key)
    raise ValueError("failed on purpose")


def call_like(seconds: float) -> str:
    """A long job that cleans up on shutdown like a call would: mark in Redis that its finally ran.

    Also records whether it, and a greenlet it spawned, saw the drain before being stopped.
    """
    job = get_current_job()
    assert job is not None
    try:
        gevent.sleep(seconds)
    except ShutdownRequested:
        job.connection.rpush("test:stopped", job.id)
        raise
    finally:
        job.connection.rpush("test:finally", job.id)
        if shutdown_requested() and gevent.spawn(shutdown_requested).get():
            job.connection.rpush("test:saw-drain", job.id)
    return "done"
