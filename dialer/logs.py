"""Log lines of every ``dialer`` process, in one of two formats (``DIALER_LOG_FORMAT``):

- ``kv`` (default), for people: ``2024-05-01 12:00:00,123 INFO dialer.dial: call ended call_id='c:k:1' ...``
- ``json``, for log shippers: one object a line, ``{"ts": ..., "level": ..., "logger": ..., "msg": ..., ...}``.

Either way the record's ``extra=`` fields (call_id, attempt, uuid, state, cause ...) are part of the line.
Standard library only, so ``dialer worker`` can configure logging before gevent patches anything.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("kv", "json")
_LINE = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``. uvicorn adds ``color_message``
# (its message with terminal colour codes) to its own records: noise in a log file.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _RECORD_FIELDS}


class KeyValueFormatter(logging.Formatter):
    """The usual line, then the record's ``extra=`` fields as ``key=value`` (values as Python literals, so
    a value with spaces or ``=`` in it stays one field)."""

    def __init__(self) -> None:
        super().__init__(_LINE)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = extra_fields(record)
        if not fields:
            return line
        return line + " " + " ".join(f"{key}={value!r}" for key, value in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a traceback goes into ``exc`` rather than onto lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return JsonFormatter() if fmt == "json" else KeyValueFormatter()


def configure(fmt: str = "kv", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's records (uvicorn's and RQ's too) to ``stream`` (stderr) in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that install handlers of their own would print every line twice, once in their format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
