"""Operations fixtures: the simulator and the real-process fixtures of the end-to-end suite."""

from tests.e2e.conftest import dialer_processes, sim

__all__ = ["dialer_processes", "sim"]
