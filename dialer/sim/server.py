"""The simulator's mod_event_socket: TCP connections, auth, subscriptions, api/bgapi, faults.

One reader greenlet per connection parses commands with ``dialer.esl.server.CommandParser`` and
runs them one at a time, as FreeSWITCH does; one writer greenlet per connection sends whatever
has queued up in a single ``sendall``, so a burst of events costs one system call. A client that
stops reading is disconnected once its queue passes ``max_queue_bytes`` instead of growing memory
(FreeSWITCH likewise kills a listener that loses too many events).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import uuid as uuidlib
from typing import Any

import gevent
import gevent.event
from gevent.server import StreamServer

from dialer.esl.errors import ProtocolError
from dialer.esl.server import ClientCommand, CommandParser, api_response, auth_request, command_reply, disconnect_notice

from .api import Api
from .bus import Sent, Subscription
from .scenarios import Scenario
from .switch import Switch

log = logging.getLogger(__name__)

MAX_QUEUE_BYTES = 256 * 1024 * 1024
HEARTBEAT_SECONDS = 20.0
FORMATS = ("plain", "json", "xml")


class Connection:
    """One inbound ESL client."""

    def __init__(self, simulator: Simulator, sock: socket.socket, address: Any) -> None:
        self.simulator = simulator
        self.sock = sock
        self.address = address
        self.subscription = Subscription()
        self.authenticated = False
        self.closed = False
        self._out: list[bytes] = []
        self._sent: list[Sent] = []  # callbacks of the events in ``_out``, called once they are written
        self._queued = 0
        self._held: list[tuple[bytes, Sent | None]] | None = None
        self._closing = False
        self._wake = gevent.event.Event()
        self.events_sent = 0

    # ------------------------------------------------------------------ output

    def send_event(self, data: bytes, sent: Sent | None = None) -> None:
        if self._held is not None:  # a command is running on this connection: events wait for its reply
            self._held.append((data, sent))
        else:
            self._queue(data, sent)
        self.events_sent += 1

    def _queue(self, data: bytes, sent: Sent | None = None) -> None:
        if self.closed:
            return
        self._out.append(data)
        if sent is not None:
            self._sent.append(sent)
        self._queued += len(data)
        if self._queued > self.simulator.max_queue_bytes:
            log.warning("ESL client %s is not reading; disconnecting it", self.address)
            self.close()
            return
        self._wake.set()

    def _hold(self) -> None:
        self._held = []

    def _release(self) -> None:
        held, self._held = self._held, None
        for data, sent in held or ():
            self._queue(data, sent)

    def _writer(self) -> None:
        try:
            while not self.closed:
                self._wake.wait()
                self._wake.clear()
                if self._out:
                    data, sent = b"".join(self._out), self._sent
                    self._out.clear()
                    self._sent = []
                    self._queued = 0
                    self.sock.sendall(data)
                    now = time.time()
                    for callback in sent:
                        callback(now)
                if self._closing and not self._out:
                    break
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.simulator.forget(self)
        self._wake.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _close_after_flush(self) -> None:
        self._closing = True
        self._wake.set()

    # ------------------------------------------------------------------ input

    def serve(self) -> None:
        writer = gevent.spawn(self._writer)
        parser = CommandParser()
        self._queue(auth_request())
        try:
            while not self.closed and not self._closing:
                data = self.sock.recv(65536)
                if not data:
                    break
                parser.feed(data)
                for command in parser:
                    if not self._dispatch(command):
                        break
                # let writers drain between batches: a client pipelining thousands of originates
                # must not starve the event listeners of the chance to send
                gevent.sleep(0)
        except (OSError, ProtocolError):
            pass
        finally:
            if not self._closing:
                self.close()
            writer.join(timeout=5)
            self.close()

    def _dispatch(self, command: ClientCommand) -> bool:
        """Run one command; False once the connection is ending (exit, bad password, dropped)."""
        self._hold()
        try:
            self._run(command)
        finally:
            self._release()
        return not (self.closed or self._closing)

    def _reply(self, data: bytes) -> None:
        delay = self.simulator.reply_delay
        if delay:
            gevent.sleep(delay)
        self._queue(data)

    def _run(self, command: ClientCommand) -> None:
        verb, argument = command.verb, command.argument.strip()
        if not self.authenticated:
            if verb != "auth":
                self._reply(command_reply("-ERR command not found"))
            elif argument == self.simulator.password:
                self.authenticated = True
                self._reply(command_reply("+OK accepted"))
            else:
                self._reply(command_reply("-ERR invalid"))
                self._queue(disconnect_notice())
                self._close_after_flush()
            return
        api = self.simulator.api
        sub = self.subscription
        if verb == "api" and argument:
            result: gevent.event.AsyncResult = gevent.event.AsyncResult()
            api.execute(argument, result.set)
            self._reply(api_response(result.get()))
        elif verb == "bgapi" and argument:
            job_uuid = command.headers.get("Job-UUID") or str(uuidlib.uuid4())
            self._reply(command_reply(f"+OK Job-UUID: {job_uuid}", job_uuid))
            name, _, arg = argument.partition(" ")
            switch = self.simulator.switch
            api.execute(argument, lambda body: switch.background_job(job_uuid, name, arg.strip(), body), job_uuid)
        elif verb == "event":
            fmt, _, names = argument.partition(" ")
            if fmt not in FORMATS:
                names, fmt = argument, "plain"
            if sub.subscribe(fmt, names.split()):
                self._reply(command_reply(f"+OK event listener enabled {fmt}"))
            else:
                self._reply(command_reply("-ERR no keywords supplied"))
            self.simulator.switch.bus.changed()
        elif verb == "nixevent":
            sub.unsubscribe(argument.split())
            self.simulator.switch.bus.changed()
            self._reply(command_reply("+OK events nixed"))
        elif verb == "noevents":
            sub.clear()
            self.simulator.switch.bus.changed()
            self._reply(command_reply("+OK no longer listening for events"))
        elif verb == "filter":
            self._reply(command_reply(self._filter(argument)))
        elif verb == "exit":
            self._reply(command_reply("+OK bye"))
            self._queue(disconnect_notice())
            self._close_after_flush()
        elif verb == "sendmsg":
            self._reply(command_reply(self._sendmsg(argument, command.headers)))
        elif verb in ("linger", "nolinger"):
            self._reply(command_reply("-ERR not controlling a session"))
        elif verb == "auth":
            self._reply(command_reply("+OK accepted"))
        else:
            self._reply(command_reply("-ERR command not found"))

    def _sendmsg(self, uuid: str, headers: dict[str, str]) -> str:
        """``sendmsg <uuid>`` with ``call-command: hangup|execute`` (what inbound clients use)."""
        switch = self.simulator.switch
        leg = switch.channels.get(uuid.strip())
        if leg is None:
            return "-ERR invalid session id [" + uuid.strip() + "]"
        command = headers.get("call-command", "")
        if command == "hangup":
            switch.hangup(leg, headers.get("hangup-cause", "NORMAL_CLEARING"))
            return "+OK"
        if command == "execute":
            switch.run_application(leg, headers.get("execute-app-name", ""), headers.get("execute-app-arg", ""))
            return "+OK"
        return "-ERR invalid command"

    def _filter(self, argument: str) -> str:
        filters = self.subscription.filters
        words = argument.split(" ", 1)
        if words[0] == "delete":
            rest = (words[1] if len(words) > 1 else "").split(" ", 1)
            header = rest[0]
            value = rest[1].strip() if len(rest) > 1 else None
            if header == "all":
                filters.clear()
                return "+OK filter deleted. [all]=[]"
            before = len(filters)
            filters[:] = [(h, v) for h, v in filters if not (h == header and (value is None or v == value))]
            if len(filters) == before:
                return f"-ERR filter not found. [{header}]=[{value or ''}]"
            return f"+OK filter deleted. [{header}]=[{value or ''}]"
        if len(words) < 2 or not words[1].strip():
            return "-ERR invalid syntax"
        header, value = words[0], words[1].strip()
        filters.append((header, value))
        return f"+OK filter added. [{header}]=[{value}]"


class Simulator:
    """A FreeSWITCH look-alike on TCP. ``start()`` binds (port 0 picks a free port), ``stop()`` ends it all."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        password: str = "ClueCon",  # noqa: S107 - FreeSWITCH's well-known default, not a secret
        scenario: Scenario | None = None,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        seed: int | None = None,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.switch = Switch(scenario, seed=seed)
        self.api = Api(self.switch, self)
        self.heartbeat_seconds = heartbeat_seconds
        self.max_queue_bytes = max_queue_bytes
        self.reply_delay = 0.0
        self.connections: set[Connection] = set()
        self.accepted = 0
        self._server: StreamServer | None = None
        self._heartbeat: gevent.Greenlet | None = None
        self._down_until = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Simulator:
        self._server = StreamServer((self.host, self.port), self._handle, backlog=1024)
        self._server.start()
        self.port = self._server.address[1]
        self._heartbeat = gevent.spawn(self._heartbeat_loop)
        return self

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.kill()
            self._heartbeat = None
        if self._server is not None:
            self._server.close()  # no new connections; then end the open ones so their handlers return
            self.drop_connections()
            self._server.stop(timeout=1)
            self._server = None
        self.drop_connections()
        self.switch.reset()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if time.monotonic() < self._down_until:  # "restarting": the port answers but nobody is home
            sock.close()
            return
        self.accepted += 1
        connection = Connection(self, sock, address)
        self.connections.add(connection)
        self.switch.bus.add(connection)
        connection.serve()

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self.switch.bus.remove(connection)

    def _heartbeat_loop(self) -> None:
        while True:
            gevent.sleep(self.heartbeat_seconds)
            self.heartbeat()

    def heartbeat(self) -> None:
        sw = self.switch
        limits = sw.scenario.limits
        up_ms = int((time.time() - sw.started) * 1000)
        after = (
            ("Event-Info", "System Ready"),
            ("Up-Time", f"0 years, 0 days, 0 hours, 0 minutes, {up_ms // 1000} seconds, {up_ms % 1000} milliseconds, "
                        "0 microseconds"),
            ("FreeSWITCH-Version", "1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit"),
            ("Uptime-msec", str(up_ms)),
            ("Session-Count", str(len(sw.channels))),
            ("Max-Sessions", str(limits.max_sessions)),
            ("Session-Per-Sec", str(limits.sessions_per_second)),
            ("Session-Per-Sec-Last", "0"),
            ("Session-Per-Sec-Max", "0"),
            ("Session-Per-Sec-FiveMin", "0"),
            ("Session-Since-Startup", str(sw.sessions_since_startup)),
            ("Session-Peak-Max", str(sw.peak_sessions)),
            ("Session-Peak-FiveMin", str(sw.peak_sessions)),
            ("Idle-CPU", "99.000000"),
        )  # fmt: skip
        sw.fire("HEARTBEAT", after=after, calling=("switch_core.c", "send_heartbeat", "95"))
        sw.fire("RE_SCHEDULE", after=(("Task-ID", "1"), ("Task-Desc", "heartbeat"), ("Task-Group", "core"),
                                      ("Task-Runtime", str(int(time.time() + self.heartbeat_seconds)))),
                calling=("switch_scheduler.c", "switch_scheduler_execute", "73"))  # fmt: skip

    # ------------------------------------------------------------------ faults and control

    def drop_connections(self) -> None:
        """Every ESL connection closed at once, without a disconnect-notice (a crash or a network cut)."""
        for connection in list(self.connections):
            connection.close()

    def restart(self, down_seconds: float = 0.0) -> None:
        """As if FreeSWITCH restarted: connections dropped, channels gone without events, new Core-UUID.

        The connections are dropped a moment later, so that ``api sim restart`` still gets its reply.
        """
        self._down_until = time.monotonic() + down_seconds
        self.switch.reset()
        self._drop_soon()

    def _drop_soon(self) -> None:
        victims = list(self.connections)  # not the ones that connect after the fault

        def drop() -> None:
            for connection in victims:
                connection.close()

        gevent.spawn_later(0.05, drop)

    def fault(self, words: list[str]) -> str:
        if words[:1] == ["drop"]:
            # Reply first: the caller of ``sim fault drop`` is itself one of the dropped connections.
            self._drop_soon()
            return "+OK\n"
        if words[:1] == ["delay"] and len(words) == 2:
            self.reply_delay = float(words[1]) / 1000.0
            return "+OK\n"
        if words[:1] == ["lose"] and len(words) == 2:
            rate = float(words[1])
            if not 0.0 <= rate <= 1.0:
                return "-ERR rate must be between 0 and 1\n"
            self.switch.bus.lose_rate = rate
            return "+OK\n"
        if words[:1] == ["none"]:
            self.reply_delay = 0.0
            self.switch.bus.lose_rate = 0.0
            return "+OK\n"
        return "-USAGE: sim fault drop | delay <ms> | lose <rate 0..1> | none\n"

    def connection_stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "accepted": self.accepted,
            "reply_delay_ms": self.reply_delay * 1000,
        }

    # ------------------------------------------------------------------ in-process conveniences

    def register(self, agent_id: str) -> None:
        self.switch.register(agent_id)

    def unregister(self, agent_id: str) -> None:
        self.switch.unregister(agent_id)

    def originates(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.switch.record.as_json())
        return result
