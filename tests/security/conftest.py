"""Security tests reuse the end-to-end fixtures: the simulator process and real dialer processes."""

from tests.e2e.conftest import dialer_processes, sim

__all__ = ["dialer_processes", "sim"]
