"""The webhook queue in Redis: the stream the emitters append to, the retry schedule and the dead letters.

    dialer:webhooks            stream  campaign, body: events to deliver. Emitters XADD (their MAXLEN is only
                                       a safety net: the sender deletes each entry once it is settled, so the
                                       stream holds only what is still to deliver); the sender's consumer
                                       group ``senders`` reads it, and XAUTOCLAIMs entries a dead sender left
                                       pending
    dialer:webhooks:retry      zset    event id -> when its next attempt is due (Redis time). An event taken
                                       for an attempt is pushed back by the lease, so if its sender dies it
                                       is due again, and taken again, once the lease is over
    dialer:webhooks:dead       zset    event id -> when its last attempt failed
    dialer:webhook:<event id>  hash    campaign, body, type, call_id, attempt (attempts made or begun),
                                       state (retry | dead), status, error, entry_id, first_failed_at,
                                       updated_at

Every move is one atomic step: an entry leaves the stream (XACK + XDEL) only when it was delivered, dropped,
or written into the schedule in the same script. An event is therefore always in the stream, the schedule or
the dead letters until it is delivered; a sender may die anywhere and lose nothing (it may deliver twice).
Times come from Redis, so senders on several machines share one clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from dialer.webhooks.events import Event

STREAM = "dialer:webhooks"
RETRY = "dialer:webhooks:retry"
DEAD = "dialer:webhooks:dead"
RECORD_PREFIX = "dialer:webhook:"
GROUP = "senders"

StreamEntry = tuple[str, dict[bytes, bytes]]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function fmt(x) return string.format('%.6f', x) end
"""

# KEYS: stream, retry, dead, record. ARGV: group, entry id, event id, delay ('' = dead now), campaign, body,
# type, call_id, status, error. A first attempt failed: schedule (or dead-letter) and take the entry off the
# stream in one step. An event already scheduled under this id keeps its schedule. Returns the due time,
# 'dead', or false when the id was already scheduled or dead.
_FAIL_ENTRY = (
    _NOW
    + """
local result = false
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('HSET', KEYS[4], 'campaign', ARGV[5], 'body', ARGV[6], 'type', ARGV[7], 'call_id', ARGV[8],
             'attempt', 1, 'status', ARGV[9], 'error', ARGV[10], 'entry_id', ARGV[2],
             'first_failed_at', fmt(now), 'updated_at', fmt(now))
  if ARGV[4] == '' then
    redis.call('HSET', KEYS[4], 'state', 'dead')
    redis.call('ZADD', KEYS[3], fmt(now), ARGV[3])
    result = 'dead'
  else
    result = fmt(now + tonumber(ARGV[4]))
    redis.call('HSET', KEYS[4], 'state', 'retry')
    redis.call('ZADD', KEYS[2], result, ARGV[3])
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return result
"""
)

# KEYS: retry. ARGV: limit, lease (s), record prefix. Takes up to ``limit`` due events: each is pushed back
# by the lease and its attempt counter goes up. Returns {seconds until the next due event or '', then id,
# campaign, body, attempt per event}.
_CLAIM = (
    _NOW
    + """
local out = {''}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  local fields = redis.call('HMGET', key, 'campaign', 'body')
  if fields[1] and fields[2] then
    redis.call('ZADD', KEYS[1], fmt(now + tonumber(ARGV[2])), id)
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    table.insert(out, id)
    table.insert(out, fields[1])
    table.insert(out, fields[2])
    table.insert(out, tostring(attempt))
  else
    redis.call('ZREM', KEYS[1], id)  -- its record was deleted by hand: nothing left to deliver
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then out[1] = fmt(math.max(0, tonumber(first[2]) - now)) end
return out
"""
)

# KEYS: retry, dead, record. ARGV: event id, attempt, action (done | retry | dead), delay, status, error.
# Settles the attempt a sender claimed; false if the event was claimed again since (the lease ran out).
# Returns 'done', 'dead' or the next due time.
_SETTLE = (
    _NOW
    + """
if redis.call('HGET', KEYS[3], 'attempt') ~= ARGV[2] then return false end
if ARGV[3] == 'done' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
  return 'done'
end
redis.call('HSET', KEYS[3], 'status', ARGV[5], 'error', ARGV[6], 'updated_at', fmt(now))
if ARGV[3] == 'dead' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], fmt(now), ARGV[1])
  redis.call('HSET', KEYS[3], 'state', 'dead')
  return 'dead'
end
local due = fmt(now + tonumber(ARGV[4]))
redis.call('ZADD', KEYS[1], due, ARGV[1])
return due
"""
)

# KEYS: retry, dead, record. ARGV: event id. A dead event is due now, with a fresh count of attempts.
_REPLAY = (
    _NOW
    + """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 'attempt', 0, 'state', 'retry', 'updated_at', fmt(now))
redis.call('ZADD', KEYS[1], fmt(now), ARGV[1])
return 1
"""
)

# KEYS: stream. ARGV: group, idle (ms), own name. Each process reads as a consumer of its own name; this
# forgets those idle that long with nothing pending (nothing is lost), in one step so none reads meanwhile.
_FORGET_CONSUMERS = """
local n = 0
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  if info['name'] ~= ARGV[3] and info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    n = n + 1
  end
end
return n
"""


def record_key(event_id: str) -> str:
    return RECORD_PREFIX + event_id


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Claimed:
    """An event taken from the retry schedule for attempt number ``attempt``."""

    event_id: str
    campaign: bytes
    body: bytes
    attempt: int


class WebhookQueue:
    """Typed access to the keys above, for one consumer (a sender process) of the group."""

    def __init__(self, client: redis.Redis[bytes], consumer: str) -> None:
        self.redis = client
        self.consumer = consumer
        self._reclaim_cursor = "0-0"
        self._fail_entry = client.register_script(_FAIL_ENTRY)
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)
        self._replay = client.register_script(_REPLAY)
        self._forget = client.register_script(_FORGET_CONSUMERS)

    # ------------------------------------------------------------------ the stream

    def ensure_group(self) -> None:
        """The consumer group, reading from the start of the stream: events appended before the first
        sender ever ran are delivered too."""
        try:
            self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int, block_seconds: float) -> list[StreamEntry]:
        """New entries for this consumer, waiting at most ``block_seconds`` for one."""
        reply = self.redis.xreadgroup(
            GROUP, self.consumer, {STREAM: ">"}, count=count, block=max(1, int(block_seconds * 1000))
        )
        if not reply:
            return []
        return [(_text(entry_id), fields) for entry_id, fields in reply[0][1]]

    def reclaim(self, count: int, min_idle_seconds: float) -> tuple[list[StreamEntry], bool]:
        """Entries another consumer (a dead sender) left pending for ``min_idle_seconds``, now this one's;
        and whether more may be waiting (the scan is resumed from where it stopped on the next call)."""
        reply = self.redis.xautoclaim(
            STREAM, GROUP, self.consumer, int(min_idle_seconds * 1000), self._reclaim_cursor, count=count
        )
        self._reclaim_cursor = _text(reply[0])
        # Pending, but trimmed off the stream (MAXLEN): nothing left to deliver. Redis 7 lists their ids
        # apart, Redis 6.2 returns them without fields.
        gone = [*(reply[2] if len(reply) > 2 else []), *(entry_id for entry_id, fields in reply[1] if not fields)]
        if gone:
            self.redis.xack(STREAM, GROUP, *gone)  # type: ignore[no-untyped-call]
        claimed = [(_text(entry_id), fields) for entry_id, fields in reply[1] if fields]
        return claimed, self._reclaim_cursor != "0-0"

    def settle_entry(self, entry_id: str) -> None:
        """A first attempt delivered (or the event dropped): off the stream."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(STREAM, GROUP, entry_id)
        pipe.xdel(STREAM, entry_id)
        pipe.execute()

    def fail_entry(self, entry_id: str, event: Event, delay: float | None, status: str, error: str) -> str | None:
        """A first attempt failed: into the retry schedule after ``delay`` s (None: the dead letters) and
        off the stream, in one step. Returns the due time or 'dead'; None if the id was already scheduled."""
        reply = self._fail_entry(
            keys=[STREAM, RETRY, DEAD, record_key(event.event_id)],
            args=[
                GROUP,
                entry_id,
                event.event_id,
                "" if delay is None else f"{delay:.6f}",
                event.campaign,
                event.body,
                event.type,
                event.call_id or "",
                status,
                error,
            ],
        )
        return None if reply is None else _text(reply)

    # ------------------------------------------------------------------ the retry schedule

    def claim_retries(self, limit: int, lease_seconds: float) -> tuple[list[Claimed], float | None]:
        """Up to ``limit`` due events, each leased for ``lease_seconds``; and the seconds until the next one
        is due (None: the schedule is empty)."""
        reply = cast("list[Any]", self._claim(keys=[RETRY], args=[limit, f"{lease_seconds:.6f}", RECORD_PREFIX]))
        wait = float(_text(reply[0])) if reply[0] else None
        claimed = [
            Claimed(_text(reply[i]), reply[i + 1], reply[i + 2], int(reply[i + 3])) for i in range(1, len(reply), 4)
        ]
        return claimed, wait

    def settle_retry(
        self, event_id: str, attempt: int, action: str, delay: float | None = None, status: str = "", error: str = ""
    ) -> str | None:
        """``action`` done, retry (after ``delay`` s) or dead for a claimed attempt. Returns 'done', 'dead' or
        the next due time; None if the event was claimed again meanwhile (its lease ran out)."""
        reply = self._settle(
            keys=[RETRY, DEAD, record_key(event_id)],
            args=[event_id, attempt, action, "" if delay is None else f"{delay:.6f}", status, error],
        )
        return None if reply is None else _text(reply)

    # ------------------------------------------------------------------ dead letters

    def dead(self, campaign: str | None = None, limit: int = 100) -> list[dict[str, str]]:
        """Dead-lettered events, oldest first: their record fields, ``id`` and ``dead_at``."""
        found: list[dict[str, str]] = []
        start = 0
        while len(found) < limit:
            page = self.redis.zrange(DEAD, start, start + 499, withscores=True)
            if not page:
                break
            start += len(page)
            pipe = self.redis.pipeline(transaction=False)
            for event_id, _ in page:
                pipe.hgetall(record_key(_text(event_id)))
            for (event_id, dead_at), record in zip(page, pipe.execute(), strict=True):
                fields = {_text(k): _text(v) for k, v in record.items()}
                if campaign is None or fields.get("campaign") == campaign:
                    found.append({"id": _text(event_id), "dead_at": f"{dead_at:.6f}", **fields})
        return found[:limit]

    def replay(self, event_ids: Sequence[str]) -> list[str]:
        """Dead events back into the schedule, due now with a fresh count of attempts; the ids not dead."""
        return [
            event_id
            for event_id in event_ids
            if not self._replay(keys=[RETRY, DEAD, record_key(event_id)], args=[event_id])
        ]

    # ------------------------------------------------------------------ housekeeping

    def forget_idle_consumers(self, idle_seconds: float) -> int:
        """Consumers (past sender processes) idle this long with nothing pending: forgotten."""
        return int(self._forget(keys=[STREAM], args=[GROUP, int(idle_seconds * 1000), self.consumer]))
