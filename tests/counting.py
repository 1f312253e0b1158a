"""A Redis client that counts its round trips: one ``send_packed_command`` is one (a pipeline is one)."""

from __future__ import annotations

from typing import Any

import redis


class CountingConnection(redis.Connection):
    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def counting_client(client: redis.Redis) -> redis.Redis:
    """A client on the same server as ``client``, connected (the handshake is not counted); read and reset
    ``CountingConnection.sent``."""
    kwargs = client.connection_pool.connection_kwargs
    counted = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=CountingConnection, **kwargs))
    counted.ping()
    CountingConnection.sent = 0
    return counted
