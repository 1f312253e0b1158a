"""``import dialer``: the Python API by name, loaded on first use (the worker monkey-patches before redis)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dialer


def test_every_exported_name_resolves() -> None:
    assert dialer.__all__ == sorted(dialer.__all__)
    for name in dialer.__all__:
        assert getattr(dialer, name).__name__ == name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        dialer.Nope  # noqa: B018


def test_importing_the_package_loads_neither_redis_nor_gevent() -> None:
    code = "import sys, dialer; print(sorted(m for m in ('redis', 'gevent', 'rq', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
