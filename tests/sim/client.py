"""A small test client for the simulator: gevent sockets (the simulator runs in the same process),
frames parsed with the project's FrameParser, and waits bounded by timeouts, never sleeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent import socket

from dialer.esl import Event, Frame, FrameParser, parse_event


@dataclass
class Client:
    port: int
    host: str = "127.0.0.1"
    timeout: float = 5.0
    frames: list[Frame] = field(default_factory=list)  # every frame received, in order

    def __post_init__(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.parser = FrameParser()
        self._pending: list[Frame] = []
        self._skipped: list[Frame] = []  # frames an until() passed over; a later until() may want them
        self.closed = False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def next_frame(self, timeout: float | None = None) -> Frame:
        with gevent.Timeout(timeout or self.timeout):
            while not self._pending:
                data = self.sock.recv(65536)
                if not data:
                    self.closed = True
                    raise ConnectionError("closed by the simulator")
                self.parser.feed(data)
                for frame in self.parser:
                    self.frames.append(frame)
                    self._pending.append(frame)
        return self._pending.pop(0)

    def until(self, predicate: Callable[[Frame], bool], timeout: float | None = None) -> Frame:
        for index, frame in enumerate(self._skipped):
            if predicate(frame):
                del self._skipped[index]
                return frame
        with gevent.Timeout(timeout or self.timeout):
            while True:
                frame = self.next_frame(timeout=None)
                if predicate(frame):
                    return frame
                self._skipped.append(frame)

    def reply(self) -> Frame:
        """The next command/reply or api/response (events are kept for later ``event()`` calls)."""
        return self.until(lambda f: not f.is_event)

    def auth(self, password: str = "ClueCon") -> Frame:
        greeting = self.next_frame()
        assert greeting.content_type == "auth/request"
        self.send(f"auth {password}\n\n")
        return self.reply()

    def command(self, line: str) -> str:
        self.send(f"{line}\n\n")
        return self.reply().reply_text

    def api(self, line: str) -> str:
        return self.command(f"api {line}")

    def event(self, name: str, uuid: str | None = None, timeout: float | None = None) -> Event:
        def match(frame: Frame) -> bool:
            if not frame.is_event:
                return False
            event = parse_event(frame)
            return event.name == name and (uuid is None or uuid in (event.unique_id, event.job_uuid))

        return parse_event(self.until(match, timeout))

    def events(self) -> list[Event]:
        return [parse_event(f) for f in self.frames if f.is_event]
