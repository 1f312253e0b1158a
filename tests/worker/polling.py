"""Synchronise tests on state, with a deadline, instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool],
    timeout: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    *,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it holds; ``sleep`` is ``gevent.sleep`` when a worker runs in this process."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        sleep(0.02)
