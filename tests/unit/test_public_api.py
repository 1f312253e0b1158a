"""``dialer.esl`` exports exactly its public API, and the error tree is the one its docstring draws."""

from __future__ import annotations

import dialer.esl as esl
from dialer.esl import errors

PUBLIC = {
    "AuthenticationError",
    "CommandError",
    "CommandTimeout",
    "ConnectionLost",
    "ESLError",
    "Event",
    "Frame",
    "FrameParser",
    "Gateway",
    "Leg",
    "LocalError",
    "Loopback",
    "ProtocolError",
    "RemoteError",
    "UnsafeValueError",
    "User",
    "commands",
    "dialstring",
    "parse_event",
    "parse_frames",
    "server",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(esl.__all__) == PUBLIC
    assert len(esl.__all__) == len(PUBLIC)  # no duplicates
    assert esl.__all__ == sorted(esl.__all__)
    for name in esl.__all__:
        assert getattr(esl, name) is not None


def test_nothing_public_is_left_out_of_all() -> None:
    exported = {name for name in vars(esl) if not name.startswith("_")}
    submodules = {"errors", "events", "frames"}  # imported as a side effect of the package's own imports
    assert exported - submodules == PUBLIC


def test_error_tree() -> None:
    assert issubclass(errors.LocalError, errors.ESLError)
    assert issubclass(errors.RemoteError, errors.ESLError)
    assert issubclass(errors.UnsafeValueError, errors.LocalError)
    assert issubclass(errors.UnsafeValueError, ValueError)
    for remote in (
        errors.ProtocolError,
        errors.CommandError,
        errors.AuthenticationError,
        errors.CommandTimeout,
        errors.ConnectionLost,
    ):
        assert issubclass(remote, errors.RemoteError)
        assert not issubclass(remote, errors.LocalError)
        assert remote.__name__ in (errors.__doc__ or "")


def test_esl_core_imports_no_io() -> None:
    import ast
    from pathlib import Path

    forbidden = {"socket", "gevent", "redis", "asyncio", "select", "time", "threading", "greenswitch"}
    for path in Path(esl.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, (path.name, name)
