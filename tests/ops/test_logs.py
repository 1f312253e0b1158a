"""Log formats: key=value for people, one JSON object a line for shippers; ``extra=`` fields in both."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from dialer import logs


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def call_record(message: str = "call ended") -> logging.LogRecord:
    fields = {"call_id": "spring:c1:1", "attempt": 1, "uuid": "u-1", "state": "ended", "cause": "USER_BUSY"}
    return logging.makeLogRecord({"name": "dialer.dial", "levelname": "INFO", "levelno": 20, "msg": message, **fields})


def test_key_value_lines_end_with_the_extra_fields_as_literals() -> None:
    line = logs.formatter("kv").format(call_record("call ended: busy"))
    assert line.endswith(
        "INFO dialer.dial: call ended: busy call_id='spring:c1:1' attempt=1 uuid='u-1' state='ended' cause='USER_BUSY'"
    )


def test_json_lines_carry_the_message_and_every_extra_field() -> None:
    line = json.loads(logs.formatter("json").format(call_record()))
    assert line["msg"] == "call ended"
    assert line["logger"] == "dialer.dial"
    assert line["level"] == "INFO"
    assert {k: line[k] for k in ("call_id", "attempt", "uuid", "state", "cause")} == {
        "call_id": "spring:c1:1",
        "attempt": 1,
        "uuid": "u-1",
        "state": "ended",
        "cause": "USER_BUSY",
    }
    assert line["ts"].endswith("+00:00")


def test_a_json_line_holds_its_traceback_and_stays_one_line() -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = logs.formatter("json").format(record)
    assert "\n" not in text
    assert "RuntimeError: boom" in json.loads(text)["exc"]


def test_configure_sends_every_logger_through_one_handler(restore_root_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("json", "INFO", stream)
    logging.getLogger("uvicorn.error").info("started", extra={"port": 8080})
    logging.getLogger("dialer.worker").debug("not shown")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["msg"], line["port"]) for line in lines] == [("uvicorn.error", "started", 8080)]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of kv, json"):
        logs.formatter("xml")
