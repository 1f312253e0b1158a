"""Campaigns and contacts in Redis: the keys, and the Lua scripts that change them atomically.

    dialer:campaigns                         zset    campaign id -> creation time
    dialer:campaigns:live                    set     campaigns the scheduler looks after (running, paused,
                                                     canceled until its last queued call settled)
    dialer:campaign:<id>                     hash    config (JSON, no secret, no metadata), webhook_secret,
                                                     webhooks ('1': events go to ``dialer:webhooks``),
                                                     metadata (JSON), state, <state>_at timestamps
    dialer:campaign:<id>:stats               hash    contacts, dispatched, state:<contact state>,
                                                     outcome:<final outcome> (contacts), call:<outcome> (calls)
    dialer:campaign:<id>:due                 zset    contact id -> when it may be dialled (epoch s): new
                                                     contacts, retries, contacts waiting for their window
    dialer:campaign:<id>:active              zset    contact id -> when dispatched or last checked: a call
                                                     job is queued or its call is in progress
    dialer:campaign:<id>:dispatches          zset    call id -> when handed to the workers (last 60 s: CPS)
    dialer:campaign:<id>:dialing             zset    call id -> when dispatched: calls that still need an agent
                                                     (queued, ringing, answered and waiting); left when an agent
                                                     is reserved for the call or the call ends (dial modes)
    dialer:campaign:<id>:contact:<contact>   hash    contact_id, number (E.164), zones, metadata (JSON), state,
                                                     attempt (last attempt number issued), call_id, calls,
                                                     tries:<outcome>, settled (last attempt settled),
                                                     last_outcome, outcome (final), due_at
    dialer:dnc:<list>                        set     E.164 numbers never to dial; ``global`` applies to all

A contact is in at most one of ``due`` and ``active``. Every change of a contact's state goes through
``move()`` in Lua, which keeps the ``state:*`` counters of the stats hash exact; times come from Redis.
Metadata and the webhook secret are read by nobody on the call path: they never reach a job or the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from dialer.campaigns.intake import Contact

PREFIX = "dialer"
CAMPAIGNS = f"{PREFIX}:campaigns"
LIVE = f"{PREFIX}:campaigns:live"
GLOBAL_DNC = "global"
CPS_WINDOW = 10.0


def campaign_key(campaign: str) -> str:
    return f"{PREFIX}:campaign:{campaign}"


def stats_key(campaign: str) -> str:
    return f"{campaign_key(campaign)}:stats"


def due_key(campaign: str) -> str:
    return f"{campaign_key(campaign)}:due"


def active_key(campaign: str) -> str:
    return f"{campaign_key(campaign)}:active"


def dispatches_key(campaign: str) -> str:
    return f"{campaign_key(campaign)}:dispatches"


def contact_key(campaign: str, contact_id: str) -> str:
    return f"{campaign_key(campaign)}:contact:{contact_id}"


def dialing_key(campaign: str) -> str:
    return f"{campaign_key(campaign)}:dialing"


def dnc_key(name: str) -> str:
    return f"{PREFIX}:dnc:{name}"


# Shared Lua: keys from the campaign id (ARGV[1]), Redis time, the state counter, completion.
_LIB = """
local id = ARGV[1]
local C = 'dialer:campaign:' .. id
local STATS, DUE, ACTIVE, DIALING = C .. ':stats', C .. ':due', C .. ':active', C .. ':dialing'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function contact(cid) return C .. ':contact:' .. cid end
-- A webhook event (dialer.notify): its id is derived from what it reports, as notify.event_id does.
local function webhook(kind, subject, fields)
  if redis.call('HGET', C, 'webhooks') ~= '1' then return end
  local h = redis.sha1hex(subject .. '/' .. kind)
  fields.id = string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16) .. '-8'
    .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
  fields.type, fields.campaign, fields.sequence = kind, id, 1
  fields.occurred_at = tonumber(string.format('%.3f', now))
  redis.call('XADD', 'dialer:webhooks', 'MAXLEN', '~', 1000000, '*', 'campaign', id, 'body', cjson.encode(fields))
end
local function move(key, new)
  local old = redis.call('HGET', key, 'state')
  if old == new then return end
  if old then redis.call('HINCRBY', STATS, 'state:' .. old, -1) end
  redis.call('HINCRBY', STATS, 'state:' .. new, 1)
  redis.call('HSET', key, 'state', new)
end
local function finish(key, outcome)
  move(key, 'done')
  redis.call('HSET', key, 'outcome', outcome)
  redis.call('HINCRBY', STATS, 'outcome:' .. outcome, 1)
  local cid, call_id, attempt, calls = unpack(redis.call('HMGET', key, 'contact_id', 'call_id', 'attempt', 'calls'))
  webhook('contact.final', id .. ':' .. cid, {contact_id = cid, call_id = call_id or '',
    attempt = tonumber(attempt or '0'), data = {outcome = outcome, calls = tonumber(calls or '0')}})
end
local function maybe_complete()
  local state = redis.call('HGET', C, 'state')
  if state ~= 'running' and state ~= 'paused' then return end
  local total = tonumber(redis.call('HGET', STATS, 'contacts') or '0')
  local done = tonumber(redis.call('HGET', STATS, 'state:done') or '0')
  if total > 0 and done >= total then
    local completed_at = string.format('%.6f', now)
    redis.call('HSET', C, 'state', 'completed', 'completed_at', completed_at)
    redis.call('SREM', 'dialer:campaigns:live', id)
    local outcomes, stats = {}, redis.call('HGETALL', STATS)
    for i = 1, #stats, 2 do
      if string.sub(stats[i], 1, 8) == 'outcome:' then outcomes[string.sub(stats[i], 9)] = tonumber(stats[i + 1]) end
    end
    webhook('campaign.completed', id .. '/' .. completed_at, {data = {contacts = total, outcomes = outcomes}})
  end
end
"""

# ARGV: id, then a JSON array of [contact_id, number, zones, metadata] (one argument, not four per
# contact: redis-py packs each argument in Python, and that cost more than the script). Returns
# {accepted, duplicates} or {-1} (no such campaign) or {-2, state} (canceled). A completed campaign that
# gets new contacts runs again. New contacts start pending without move(): they had no state to leave,
# and are counted once for all (three commands per contact instead of six; bench/bench_enqueue.py).
_ADD_CONTACTS = (
    _LIB
    + """
local state = redis.call('HGET', C, 'state')
if not state then return {-1} end
if state == 'canceled' then return {-2, state} end
local accepted, duplicates = 0, 0
for _, row in ipairs(cjson.decode(ARGV[2])) do
  local key = contact(row[1])
  if redis.call('EXISTS', key) == 1 then
    duplicates = duplicates + 1
  else
    redis.call('HSET', key, 'contact_id', row[1], 'number', row[2], 'zones', row[3], 'metadata', row[4],
               'attempt', 0, 'calls', 0, 'settled', 0, 'state', 'pending')
    redis.call('ZADD', DUE, now, row[1])
    accepted = accepted + 1
  end
end
redis.call('HINCRBY', STATS, 'state:pending', accepted)
redis.call('HINCRBY', STATS, 'contacts', accepted)
if accepted > 0 and state == 'completed' then
  redis.call('HSET', C, 'state', 'running')
  redis.call('SADD', 'dialer:campaigns:live', id)
end
return {accepted, duplicates}
"""
)

# ARGV: id, new state, live (1/0), allowed previous states... Returns the previous state, or an error
# reply 'NOSUCH' / 'FROM <state>'.
_TRANSITION = (
    _LIB
    + """
local state = redis.call('HGET', C, 'state')
if not state then return redis.error_reply('NOSUCH') end
local allowed = false
for i = 4, #ARGV do if ARGV[i] == state then allowed = true end end
if not allowed then return redis.error_reply('FROM ' .. state) end
redis.call('HSET', C, 'state', ARGV[2], ARGV[2] .. '_at', string.format('%.6f', now))
if ARGV[3] == '1' then redis.call('SADD', 'dialer:campaigns:live', id) end
maybe_complete()
return state
"""
)

# ARGV: id, max outstanding, batch. Moves up to batch due contacts to ``active`` while the campaign runs
# and fewer than max outstanding calls are queued or in progress. Returns flat (contact_id, number, zones,
# attempt, state) tuples.
_POP_DUE = (
    _LIB
    + """
if redis.call('HGET', C, 'state') ~= 'running' then return {} end
local room = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) - redis.call('ZCARD', ACTIVE))
if room <= 0 then return {} end
local ids = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, room)
local out = {}
for _, cid in ipairs(ids) do
  redis.call('ZREM', DUE, cid)
  redis.call('ZADD', ACTIVE, now, cid)
  local fields = redis.call('HMGET', contact(cid), 'number', 'zones', 'attempt', 'state')
  table.insert(out, cid)
  for _, value in ipairs(fields) do table.insert(out, value or '') end
end
return out
"""
)

# ARGV: id, agent group, horizon (s). The campaign's demand for agents: {free agents of the group (ready,
# registered, out of wrap-up), calls still needing one}; dialing entries older than the horizon (a job
# lost with its worker) are dropped.
_AGENT_DEMAND = (
    _LIB
    + """
redis.call('ZREMRANGEBYSCORE', DIALING, '-inf', now - tonumber(ARGV[3]))
local free = redis.call('ZCOUNT', 'dialer:agents:' .. ARGV[2] .. ':available', '-inf', now)
return {free, redis.call('ZCARD', DIALING)}
"""
)

# ARGV: id, contact_id, attempt, call_id. The contact's call job is being enqueued.
_DISPATCHED = (
    _LIB
    + """
local key = contact(ARGV[2])
redis.call('HSET', key, 'attempt', ARGV[3], 'call_id', ARGV[4])
move(key, 'queued')
redis.call('HINCRBY', STATS, 'dispatched', 1)
local D = C .. ':dispatches'
redis.call('ZADD', D, now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', D, '-inf', now - 60)
redis.call('ZADD', DIALING, now, ARGV[4])
return 1
"""
)

# ARGV: id, contact_id, due time (epoch s; '' = now), new state, expected call_id ('' = any).
# Back into the due set: not dialled now (outside its window, campaign paused, job lost).
_RESCHEDULE = (
    _LIB
    + """
local key = contact(ARGV[2])
if ARGV[5] ~= '' and (redis.call('HGET', key, 'call_id') ~= ARGV[5] or redis.call('HGET', key, 'state') ~= 'queued')
then return 0 end
if redis.call('HGET', key, 'state') == 'done' then return 0 end
redis.call('ZREM', DIALING, redis.call('HGET', key, 'call_id') or '')
local due = now
if ARGV[3] ~= '' then due = tonumber(ARGV[3]) end
redis.call('ZREM', ACTIVE, ARGV[2])
redis.call('ZADD', DUE, due, ARGV[2])
redis.call('HSET', key, 'due_at', string.format('%.6f', due))
move(key, ARGV[4])
return 1
"""
)

# ARGV: id, contact_id, attempt ('' = not a call attempt), outcome, counted (1: a call was made),
# retry delay ('' = final). Applies an outcome once per attempt; a canceled campaign retries nobody.
# Returns 0 (already applied), 1 (final), 2 (retry scheduled).
_SETTLE = (
    _LIB
    + """
local key = contact(ARGV[2])
local state = redis.call('HGET', key, 'state')
if not state or state == 'done' then return 0 end
if ARGV[3] ~= '' then
  if tonumber(redis.call('HGET', key, 'settled') or '0') >= tonumber(ARGV[3]) then return 0 end
  redis.call('HSET', key, 'settled', ARGV[3])
end
local outcome = ARGV[4]
redis.call('ZREM', DIALING, redis.call('HGET', key, 'call_id') or '')
redis.call('ZREM', ACTIVE, ARGV[2])
redis.call('ZREM', DUE, ARGV[2])
redis.call('HSET', key, 'last_outcome', outcome)
if ARGV[5] == '1' then
  redis.call('HINCRBY', key, 'calls', 1)
  redis.call('HINCRBY', key, 'tries:' .. outcome, 1)
  redis.call('HINCRBY', STATS, 'call:' .. outcome, 1)
end
local campaign_state = redis.call('HGET', C, 'state')
if ARGV[6] ~= '' and campaign_state ~= 'canceled' then
  local due = now + tonumber(ARGV[6])
  redis.call('ZADD', DUE, due, ARGV[2])
  redis.call('HSET', key, 'due_at', string.format('%.6f', due))
  move(key, 'retry-wait')
  return 2
end
finish(key, outcome)
maybe_complete()
return 1
"""
)

# ARGV: id, batch. Cancel: pending contacts become final without a call ('canceled', or
# 'outside-calling-hours' for one that was waiting for its window). Returns how many.
_CANCEL_PENDING = (
    _LIB
    + """
local popped = redis.call('ZPOPMIN', DUE, tonumber(ARGV[2]))
local n = 0
for i = 1, #popped, 2 do
  local key = contact(popped[i])
  if redis.call('HGET', key, 'state') == 'outside-hours' then finish(key, 'outside-calling-hours')
  else finish(key, 'canceled') end
  n = n + 1
end
return n
"""
)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(raw: Any) -> dict[str, str]:
    return {text(k): text(v) for k, v in cast("dict[Any, Any]", raw).items()}


class TransitionRefused(Exception):
    """The campaign is missing (``state`` None) or in a state the transition does not start from."""

    def __init__(self, state: str | None) -> None:
        super().__init__(state or "no such campaign")
        self.state = state


class CampaignRedis:
    """Typed access to the keys above."""

    def __init__(self, client: redis.Redis[bytes]) -> None:
        self.redis = client
        self._add = client.register_script(_ADD_CONTACTS)
        self._transition = client.register_script(_TRANSITION)
        self._pop = client.register_script(_POP_DUE)
        self._dispatched = client.register_script(_DISPATCHED)
        self._reschedule = client.register_script(_RESCHEDULE)
        self._settle = client.register_script(_SETTLE)
        self._cancel_pending = client.register_script(_CANCEL_PENDING)
        self._agent_demand = client.register_script(_AGENT_DEMAND)

    # ------------------------------------------------------------------ campaigns

    def create(self, campaign: str, fields: dict[str, str], created_at: float) -> bool:
        """False if the id is taken."""
        if not self.redis.hsetnx(campaign_key(campaign), "state", "draft"):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(campaign_key(campaign), mapping=cast("dict[str | bytes, str]", fields))
        pipe.zadd(CAMPAIGNS, {campaign: created_at})
        pipe.execute()
        return True

    def campaign(self, campaign: str) -> dict[str, str]:
        return decode(self.redis.hgetall(campaign_key(campaign)))

    def campaign_field(self, campaign: str, name: str) -> str | None:
        value = self.redis.hget(campaign_key(campaign), name)
        return None if value is None else text(value)

    def campaign_ids(self) -> list[str]:
        return [text(x) for x in self.redis.zrange(CAMPAIGNS, 0, -1)]

    def live(self) -> list[str]:
        return sorted(text(x) for x in self.redis.smembers(LIVE))

    def leave_live(self, campaign: str) -> None:
        self.redis.srem(LIVE, campaign)

    def transition(self, campaign: str, to: str, allowed: Sequence[str], live: bool) -> str:
        try:
            return text(self._transition(args=[campaign, to, "1" if live else "0", *allowed]))
        except redis.ResponseError as exc:
            message = str(exc)
            raise TransitionRefused(message[5:] if message.startswith("FROM ") else None) from exc

    # ------------------------------------------------------------------ contacts

    def add_contacts(self, campaign: str, contacts: Sequence[Contact]) -> tuple[int, int]:
        """(accepted, duplicates); raises TransitionRefused when the campaign is missing or canceled."""
        rows = [
            [contact.contact_id, contact.number, ",".join(contact.zones), contact.metadata_json] for contact in contacts
        ]
        reply = self._add(args=[campaign, json.dumps(rows, separators=(",", ":"))])
        code = int(reply[0])
        if code == -1:
            raise TransitionRefused(None)
        if code == -2:
            raise TransitionRefused(text(reply[1]))
        return code, int(reply[1])

    def contact(self, campaign: str, contact_id: str) -> dict[str, str]:
        return decode(self.redis.hgetall(contact_key(campaign, contact_id)))

    def pop_due(self, campaign: str, max_outstanding: int, batch: int) -> list[dict[str, str]]:
        flat = [text(x) for x in self._pop(args=[campaign, max_outstanding, batch])]
        names = ("contact_id", "number", "zones", "attempt", "state")
        return [dict(zip(names, flat[i : i + 5], strict=True)) for i in range(0, len(flat), 5)]

    def agent_demand(self, campaign: str, group: str, horizon: float) -> tuple[int, int]:
        """(free agents of ``group``, calls of the campaign still needing an agent)."""
        free, dialing = self._agent_demand(args=[campaign, group, horizon])
        return int(free), int(dialing)

    def dispatched(self, campaign: str, contact_id: str, attempt: int, call_id: str) -> None:
        self._dispatched(args=[campaign, contact_id, attempt, call_id])

    def reschedule(
        self, campaign: str, contact_id: str, due: float | None, state: str, expected_call_id: str = ""
    ) -> bool:
        args = [campaign, contact_id, "" if due is None else f"{due:.6f}", state, expected_call_id]
        return bool(self._reschedule(args=args))

    def settle(
        self, campaign: str, contact_id: str, attempt: int | None, outcome: str, counted: bool, retry: float | None
    ) -> int:
        args = [
            campaign,
            contact_id,
            "" if attempt is None else str(attempt),
            outcome,
            "1" if counted else "0",
            "" if retry is None else str(retry),
        ]
        return int(self._settle(args=args))

    def cancel_pending(self, campaign: str, batch: int = 1000) -> int:
        return int(self._cancel_pending(args=[campaign, batch]))

    def stale_active(self, campaign: str, older_than: float, limit: int = 100) -> list[str]:
        return [text(x) for x in self.redis.zrangebyscore(active_key(campaign), "-inf", older_than, 0, limit)]

    def touch_active(self, campaign: str, contact_id: str, at: float) -> None:
        self.redis.zadd(active_key(campaign), {contact_id: at}, xx=True)

    def counts(self, campaign: str) -> tuple[dict[str, str], int, int, int]:
        """(stats hash, in progress, pending in the due set, dispatched in the last CPS_WINDOW seconds)."""
        now = self.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(stats_key(campaign))
        pipe.zcard(active_key(campaign))
        pipe.zcard(due_key(campaign))
        pipe.zcount(dispatches_key(campaign), now - CPS_WINDOW, "+inf")
        stats, active, due, recent = pipe.execute()
        return decode(stats), int(active), int(due), int(recent)

    def call_counts(self, campaign: str) -> dict[str, int]:
        """Finished calls of the campaign by outcome."""
        stats = decode(self.redis.hgetall(stats_key(campaign)))
        return {name[5:]: int(value) for name, value in stats.items() if name.startswith("call:")}

    # ------------------------------------------------------------------ do-not-call

    def dnc_add(self, name: str, numbers: Iterable[str]) -> int:
        values = list(numbers)
        return int(self.redis.sadd(dnc_key(name), *values)) if values else 0

    def dnc_remove(self, name: str, numbers: Iterable[str]) -> int:
        values = list(numbers)
        return int(self.redis.srem(dnc_key(name), *values)) if values else 0

    def dnc_contains(self, name: str, number: str) -> bool:
        return bool(self.redis.sismember(dnc_key(name), number))

    def dnc_blocked(self, numbers: Sequence[str], lists: Sequence[str]) -> set[str]:
        """The numbers on the global list or on any of ``lists``."""
        if not numbers:
            return set()
        names = [GLOBAL_DNC, *(name for name in lists if name != GLOBAL_DNC)]
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.smismember(dnc_key(name), list(numbers))  # type: ignore[no-untyped-call]
        blocked: set[str] = set()
        for flags in pipe.execute():
            blocked |= {number for number, flag in zip(numbers, flags, strict=True) if flag}
        return blocked

    def time(self) -> float:
        seconds, micros = cast(tuple[int, int], self.redis.time())
        return seconds + micros / 1e6
