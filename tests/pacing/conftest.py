"""Pacing tests reuse the end-to-end fixtures: the simulator process, runtimes, and worker processes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import DialerProcess, StartProcess, dialer_processes, make_runtime, sim

__all__ = ["dialer_processes", "make_runtime", "sim", "workers"]


@pytest.fixture
def workers(dialer_processes: StartProcess) -> Callable[..., DialerProcess]:
    def start(name: str, concurrency: int = 50, **env_overrides: str) -> DialerProcess:
        return dialer_processes("worker", "--concurrency", str(concurrency), "--name", name, **env_overrides)

    return start
