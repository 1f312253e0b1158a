"""One authenticated TCP connection to FreeSWITCH's event socket, on greenswitch.

greenswitch's ``InboundESL`` is the project's ESL client, but several of its behaviours must not
reach the dialer (greenswitch issues #34, #45, #47, #86), so this subclass replaces them:

- ``ESLEvent.parse_data`` URL-decodes a whole event before splitting lines, so an encoded newline in
  any value injects headers; and ``receive_events`` decodes each TCP read as UTF-8, which breaks on a
  split multi-byte character. Here the reader feeds raw bytes to ``dialer.esl.FrameParser``.
- ``send()`` has no timeout, uses ``socket.send`` (a partial write corrupts the stream) and queues the
  reply waiter before writing. Here a write is ``sendall`` under a lock, the waiter is queued only once
  the write succeeded, and every wait is bounded.
- Pending commands are never failed on disconnect. Here they fail at once with ``ConnectionLost``.
- ``connect()`` waits for ``auth/request`` forever and hangs when called twice. Here every step has a
  timeout and a link is never reused: ``dialer.switch.Switch`` makes a new one to reconnect.

A link is used by one owner (``Switch``); it hands every event frame to ``on_event`` from its reader
greenlet, in arrival order, and calls ``on_close`` once when it dies.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable

import gevent
import gevent.lock
import gevent.socket
from gevent.event import AsyncResult
from greenswitch.esl import InboundESL

from dialer.esl import commands
from dialer.esl.errors import (
    AuthenticationError,
    CommandTimeout,
    ConnectionLost,
    ESLError,
    ProtocolError,
)
from dialer.esl.frames import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    RUDE_REJECTION,
    Frame,
    FrameParser,
)

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024


class Link(InboundESL):  # type: ignore[misc]
    """A single, never reused ESL connection with bounded waits."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        connect_timeout: float,
        command_timeout: float,
        idle_timeout: float,
        on_event: Callable[[Frame], None],
        on_close: Callable[[Link, BaseException], None],
    ) -> None:
        super().__init__(host, port, password, timeout=connect_timeout)
        self.command_timeout = command_timeout
        self.idle_timeout = idle_timeout
        self._on_event = on_event
        self._on_close = on_close
        self._waiters: deque[AsyncResult] = deque()  # reply waiters in the order the commands were written
        self._write_lock = gevent.lock.Semaphore()
        self._parser = FrameParser()
        self._reader: gevent.Greenlet | None = None
        self._closed: BaseException | None = None
        self.sock: gevent.socket.socket | None = None

    # ------------------------------------------------------------------ connect

    def connect(self) -> None:
        """Connect, wait for ``auth/request``, authenticate; everything within ``connect_timeout``."""
        try:
            with gevent.Timeout(self.timeout, CommandTimeout(f"connecting to {self.host}:{self.port}")):
                self.sock = gevent.socket.create_connection((self.host, self.port))
                self.sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
                greeting = self._read_frame()
                if greeting.content_type == RUDE_REJECTION:
                    raise AuthenticationError(f"rejected by {self.host}:{self.port} (ESL ACL): {greeting.reply_text}")
                if greeting.content_type != AUTH_REQUEST:
                    raise ProtocolError(f"expected auth/request, got {greeting.content_type}")
                self.sock.sendall(commands.auth(self.password))
                reply = self._read_frame()
                if reply.content_type != COMMAND_REPLY or not reply.reply_text.startswith("+OK"):
                    raise AuthenticationError(f"{self.host}:{self.port} refused the ESL password: {reply.reply_text}")
        except OSError as exc:
            self._close_socket()
            raise ConnectionLost(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        except BaseException:
            self._close_socket()
            raise
        self.sock.settimeout(self.idle_timeout)
        self.connected = True
        self._reader = gevent.spawn(self._read_loop)

    def _read_frame(self) -> Frame:
        """Read one frame synchronously; used only during the handshake, before the reader exists."""
        assert self.sock is not None
        while (frame := self._parser.next_frame()) is None:
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise ConnectionLost(f"{self.host}:{self.port} closed the connection during the handshake")
            self._parser.feed(data)
        return frame

    # ------------------------------------------------------------------ commands

    def send(self, data: bytes, timeout: float | None = None) -> Frame:
        """Write one serialised command and return its reply frame (command/reply or api/response)."""
        deadline = self.command_timeout if timeout is None else timeout
        waiter = self.write(data, deadline)
        try:
            frame: Frame = waiter.get(timeout=deadline)
        except gevent.Timeout:
            # The waiter stays queued: its late reply will be matched to it and dropped, so replies
            # keep lining up with the commands that caused them.
            raise CommandTimeout(f"no reply within {deadline:.1f} s to {data[:40]!r}") from None
        return frame

    def write(self, data: bytes, timeout: float) -> AsyncResult:
        """Write a command atomically and queue its reply waiter; returns the waiter."""
        if self._closed is not None:
            raise ConnectionLost(f"link to {self.host}:{self.port} is closed ({self._closed})")
        if not self._write_lock.acquire(timeout=timeout):
            raise CommandTimeout(f"could not write within {timeout:.1f} s (writer busy)")
        try:
            assert self.sock is not None
            try:
                with gevent.Timeout(timeout, CommandTimeout(f"write not finished within {timeout:.1f} s")):
                    self.sock.sendall(data)
            except (OSError, CommandTimeout) as exc:
                # A partial write leaves the stream unusable: close the link, fail everyone.
                self.close(ConnectionLost(f"write to {self.host}:{self.port} failed: {exc}"))
                raise ConnectionLost(f"write to {self.host}:{self.port} failed: {exc}") from exc
            waiter = AsyncResult()
            self._waiters.append(waiter)
            return waiter
        finally:
            self._write_lock.release()

    # ------------------------------------------------------------------ reading

    def _read_loop(self) -> None:
        reason: BaseException = ConnectionLost(f"{self.host}:{self.port} closed the connection")
        try:
            assert self.sock is not None
            # Frames left over from the handshake read come first.
            self._drain()
            while True:
                data = self.sock.recv(READ_SIZE)
                if not data:
                    break
                self._parser.feed(data)
                self._drain()
        except TimeoutError:
            reason = ConnectionLost(f"nothing from {self.host}:{self.port} for {self.idle_timeout:.0f} s")
        except ESLError as exc:
            reason = exc
        except OSError as exc:
            reason = ConnectionLost(f"connection to {self.host}:{self.port} broke: {exc}")
        except gevent.GreenletExit:
            reason = ConnectionLost("link stopped")
        self.close(reason, from_reader=True)

    def _drain(self) -> None:
        for frame in self._parser:
            kind = frame.content_type
            if kind in (COMMAND_REPLY, API_RESPONSE):
                if self._waiters:
                    self._waiters.popleft().set(frame)
                else:
                    log.warning("esl reply without a command", extra={"reply": frame.reply_text[:80]})
            elif kind == DISCONNECT_NOTICE:
                log.info("esl disconnect notice", extra={"host": self.host, "port": self.port})
            elif kind == RUDE_REJECTION:
                raise AuthenticationError(f"rejected by {self.host}:{self.port}: {frame.reply_text.strip()}")
            else:
                self._on_event(frame)

    # ------------------------------------------------------------------ closing

    def close(self, reason: BaseException | None = None, *, from_reader: bool = False) -> None:
        """Close once: fail every pending command with ``ConnectionLost`` and tell the owner."""
        if self._closed is not None:
            return
        self._closed = reason or ConnectionLost("link closed")
        self.connected = False
        failure = self._closed if isinstance(self._closed, ConnectionLost) else ConnectionLost(str(self._closed))
        while self._waiters:
            self._waiters.popleft().set_exception(failure)
        self._close_socket()
        if self._reader is not None and not from_reader:
            self._reader.kill(block=False)
        self._on_close(self, self._closed)

    def _close_socket(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()

    def stop(self) -> None:
        """Say ``exit`` politely if we can, then close."""
        if self._closed is None:
            with contextlib.suppress(ESLError):
                self.send(commands.exit_session(), timeout=1.0)
        self.close(ConnectionLost("link stopped"))
