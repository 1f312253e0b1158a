"""What the switch saw: every originate, and per leg the answer and the bridge/transfer that followed.

Tests and benchmarks read this (``api sim originates`` or :meth:`Record.as_json`) to measure from
the switch's side what the dialer can only claim: duplicate dials, pacing, answer-to-bridge latency.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class OriginateRecord:
    time: float  # wall clock, seconds since the epoch, when the originate was received
    uuid: str  # the channel uuid (origination_uuid when given)
    number: str  # dialled number, or the user id for user/<id>
    endpoint: str  # "gateway/<name>" or "user/<id>"
    variables: dict[str, str]
    job_uuid: str | None  # Job-UUID for bgapi, None for a blocking api originate
    result: str = ""  # "+OK" or the -ERR cause, once known
    placed: bool = True  # False: refused before any channel existed (limits, bad gateway, unregistered user ...)
    answered_at: float | None = None  # when CHANNEL_ANSWER for this leg was first written to a client's socket
    bridge_requested_at: float | None = None  # first uuid_bridge / uuid_transfer / agent originate naming this leg
    bridged_at: float | None = None  # when CHANNEL_BRIDGE was emitted
    hangup_cause: str | None = None

    def answer_sent(self, at: float) -> None:
        if self.answered_at is None:
            self.answered_at = at

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.answered_at is not None and self.bridge_requested_at is not None:
            data["answer_to_bridge_ms"] = round((self.bridge_requested_at - self.answered_at) * 1000, 3)
        return data


@dataclass
class Record:
    originates: deque[OriginateRecord] = field(default_factory=deque)
    by_uuid: dict[str, OriginateRecord] = field(default_factory=dict)
    limit: int = 200_000  # a long load test must not grow memory without bound

    def add(self, entry: OriginateRecord, *, live: bool = True) -> None:
        """Append an attempt; ``live`` ones (a channel exists) are also found by uuid."""
        if len(self.originates) >= self.limit:
            dropped = self.originates.popleft()
            if self.by_uuid.get(dropped.uuid) is dropped:
                del self.by_uuid[dropped.uuid]
        self.originates.append(entry)
        if live:
            self.by_uuid[entry.uuid] = entry

    def get(self, uuid: str) -> OriginateRecord | None:
        return self.by_uuid.get(uuid)

    def bridge_requested(self, uuid: str, when: float) -> None:
        entry = self.by_uuid.get(uuid)
        if entry is not None and entry.bridge_requested_at is None:
            entry.bridge_requested_at = when

    def clear(self) -> None:
        self.originates.clear()
        self.by_uuid.clear()

    def as_json(self) -> str:
        return json.dumps([entry.as_dict() for entry in self.originates], separators=(",", ":"))
