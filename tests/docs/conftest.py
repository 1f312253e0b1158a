"""Fixtures of the end-to-end suite: the simulator process and an in-process dialer runtime."""

from tests.e2e.conftest import make_runtime, sim

__all__ = ["make_runtime", "sim"]
