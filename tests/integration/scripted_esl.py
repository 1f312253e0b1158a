"""A tiny scripted mod_event_socket server for connection tests: each test decides the replies.

Deliberately not the simulator: these tests pin down the connection's behaviour against exact,
sometimes broken, peer behaviour (no reply, a slow reply, a drop in the middle of a command).
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import gevent.event
import gevent.socket
from gevent.server import StreamServer

from dialer.esl import server as wire

Responder = Callable[["Peer", wire.ClientCommand], bytes | None]


def default_responder(peer: Peer, command: wire.ClientCommand) -> bytes | None:
    if command.verb == "auth":
        ok = command.argument == peer.server.password
        return wire.command_reply("+OK accepted" if ok else "-ERR invalid")
    if command.verb in ("event", "filter", "nixevent", "noevents"):
        return wire.command_reply("+OK")
    if command.verb == "exit":
        return wire.command_reply("+OK bye") + wire.disconnect_notice()
    if command.verb == "api":
        return wire.api_response("+OK\n")
    if command.verb == "bgapi":
        job = command.headers.get("Job-UUID", "00000000-0000-0000-0000-000000000000")
        return wire.command_reply(f"+OK Job-UUID: {job}", job_uuid=job)
    return wire.command_reply("-ERR command not found")


class Peer:
    """One client connection as the server sees it."""

    def __init__(self, server: ScriptedESL, sock: gevent.socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.commands: list[wire.ClientCommand] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


class ScriptedESL:
    def __init__(self, responder: Responder = default_responder, password: str = "ClueCon") -> None:
        self.responder = responder
        self.password = password
        self.peers: list[Peer] = []
        self.connected = gevent.event.Event()
        self._server = StreamServer(("127.0.0.1", 0), self._handle)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def __enter__(self) -> ScriptedESL:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(timeout=1)
        for peer in self.peers:
            peer.close()

    def wait_peers(self, count: int, timeout: float = 5.0) -> Peer:
        with gevent.Timeout(timeout):
            while len(self.peers) < count:
                gevent.sleep(0.005)
        return self.peers[count - 1]

    def wait_command(self, peer: Peer, verb: str, timeout: float = 5.0) -> wire.ClientCommand:
        with gevent.Timeout(timeout):
            while True:
                for command in peer.commands:
                    if command.verb == verb:
                        return command
                gevent.sleep(0.005)

    def _handle(self, sock: gevent.socket.socket, _address: object) -> None:
        peer = Peer(self, sock)
        self.peers.append(peer)
        parser = wire.CommandParser()
        try:
            sock.sendall(wire.auth_request())
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                parser.feed(data)
                for command in parser:
                    peer.commands.append(command)
                    reply = self.responder(peer, command)
                    if reply:
                        sock.sendall(reply)
        except OSError:
            return
