"""State in Redis: call records, attempt claims, in-flight leases, agents and their reservations.

Every key the dialer writes, in one place:

    dialer:call:<call_id>              hash    the attempt's record (state, uuids, timestamps, cause, outcome, owner)
    dialer:call:<call_id>:log          stream  its transitions and out-of-order events, in order
    dialer:inflight                    zset    call_id -> lease expiry (Redis time, seconds); owners renew,
                                               anyone may adopt an expired one and reconcile it
    dialer:agents                      set     agent ids
    dialer:agents:unregistered         set     agents whose phone was last reported unregistered
    dialer:agent:<id>                  hash    id, group, endpoint, state (``AgentState``), call, missed (in a
                                               row), pause_reason, pending (pause/log-out asked for during a
                                               call) and pending_reason, registered (1/0; '' = not yet known),
                                               contact, registration_at, offer and offer_decision (preview)
    dialer:agents:<group>:available    zset    agent id -> time from which it may take a call (wrap-up ends)
    dialer:agent:<id>:lease            string  the call holding the agent; expires if its worker dies
    dialer:pacing:...                  pacing: CPS limits (GCRA), concurrency leases, gateway back-off;
                                       listed, with their meaning, at the top of ``dialer.pacing``

Campaigns (``dialer.campaigns``; each key, and the Lua that changes it, in ``dialer/campaigns/state.py``):

    dialer:campaigns, dialer:campaigns:live          zset/set  campaign ids; those the scheduler looks after
    dialer:campaign:<id>                             hash      config (JSON), webhook secret, metadata, state
    dialer:campaign:<id>:stats                       hash      counters by contact state and outcome, calls
    dialer:campaign:<id>:due / :active               zset      contacts waiting to be dialled / being called
    dialer:campaign:<id>:dispatches                  zset      call ids handed to workers in the last 60 s
    dialer:campaign:<id>:contact:<contact_id>        hash      number, zones, metadata, state, attempts, outcome
    dialer:dnc:<list>                                set       E.164 numbers never dialled (``global``: all)

Multi-key changes are Lua scripts, so they are atomic across any number of workers; times come
from Redis (``TIME``), so workers' clocks do not matter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from dialer.esl import dialstring

PREFIX = "dialer"
INFLIGHT = f"{PREFIX}:inflight"
AGENTS = f"{PREFIX}:agents"
UNREGISTERED = f"{PREFIX}:agents:unregistered"
LOG_MAXLEN = 200
POOL_SIZE = 32  # connections per process: Redis answers in microseconds, so a few dozen serve 1,000s of calls


def restart_retry() -> Retry:
    """Retry a command whose connection failed (refused, closed) for about 10 s, backing off to 1 s between
    tries: long enough to ride out a Redis restart without failing the calls in progress. redis-py gives a
    client built with ``Redis.from_url`` a retry of its own, but none to one built on a pool made by hand, as
    ours are. No jitter: the total must not come out short. Timeouts are not retried: a slow Redis is not
    made slower, and a bounded wait stays bounded."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), 14, supported_errors=(redis.ConnectionError,))


def call_key(call_id: str) -> str:
    return f"{PREFIX}:call:{call_id}"


def call_log_key(call_id: str) -> str:
    return f"{PREFIX}:call:{call_id}:log"


def agent_key(agent_id: str) -> str:
    return f"{PREFIX}:agent:{agent_id}"


def agent_lease_key(agent_id: str) -> str:
    return f"{PREFIX}:agent:{agent_id}:lease"


def available_key(group: str) -> str:
    return f"{PREFIX}:agents:{group}:available"


class AgentState(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RESERVED = "reserved"
    RINGING = "ringing"
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


#: An agent in one of these holds a call (its lease is the call's); in the others it holds none.
BUSY_STATES = (AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL)
IDLE_STATES = (AgentState.OFFLINE, AgentState.AVAILABLE, AgentState.WRAP_UP, AgentState.PAUSED)


class AgentActionRefused(Exception):
    """The agent is unknown (``state`` None) or in a state the action does not start from."""

    def __init__(self, state: str | None) -> None:
        super().__init__(state or "no such agent")
        self.state = state


class NoOffer(Exception):
    """The agent has no preview offer to decide on (or it was decided already)."""


_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS: record, inflight. ARGV: call_id, lease seconds, field, value, ...
# Creates the record and its lease only if the attempt was never claimed; else returns the record.
_CLAIM = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HSET', KEYS[1], 'claimed_at', string.format('%.6f', now))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return {}
"""
)

# KEYS: inflight. ARGV: owner, lease seconds, call_id...  Renews the leases of calls this owner still holds.
_RENEW = (
    _NOW
    + """
local renewed = 0
for i = 3, #ARGV do
  if redis.call('HGET', 'dialer:call:' .. ARGV[i], 'owner') == ARGV[1] and redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[i])
    local agent = redis.call('HGET', 'dialer:call:' .. ARGV[i], 'agent')
    if agent then redis.call('PEXPIRE', 'dialer:agent:' .. agent .. ':lease', math.floor(tonumber(ARGV[2]) * 1000)) end
    renewed = renewed + 1
  end
end
return renewed
"""
)

# KEYS: inflight, record. ARGV: call_id, new owner, lease seconds. Adopt a call whose lease expired.
_ADOPT = (
    _NOW
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local previous = redis.call('HGET', KEYS[2], 'owner') or ''
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'adopted_from', previous)
return 1
"""
)

# KEYS: available zset, the campaign's dialing zset (may be absent). ARGV: call_id, lease ms.
# Take the longest-idle registered agent whose wrap-up is over. Agents met on the way that cannot take a
# call (paused, logged out, unregistered) leave the set; they come back when they are ready/registered.
_RESERVE = (
    _NOW
    + """
local candidates = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
for _, id in ipairs(candidates) do
  redis.call('ZREM', KEYS[1], id)
  local key = 'dialer:agent:' .. id
  local state, registered = unpack(redis.call('HMGET', key, 'state', 'registered'))
  if registered ~= '0' and (state == 'available' or state == 'wrap-up')
     and redis.call('SET', key .. ':lease', ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('HSET', key, 'state', 'reserved', 'call', ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
    return id
  end
end
return false
"""
)

# Shared by release and operator actions: put an agent in ``state`` (and into its group's available set
# from ``free_at`` when it can take calls).
_SET_STATE = """
local function set_state(key, state, free_at, reason)
  local id, group, registered = unpack(redis.call('HMGET', key, 'id', 'group', 'registered'))
  local available = 'dialer:agents:' .. (group or '') .. ':available'
  redis.call('HSET', key, 'state', state, 'pause_reason', reason or '')
  if (state == 'available' or state == 'wrap-up') and registered ~= '0' then
    redis.call('ZADD', available, free_at, id)
  else
    redis.call('ZREM', available, id)
  end
end
"""

# KEYS: agent hash, lease. ARGV: call_id ('': a dead worker's call, the lease must be gone), wrap-up
# seconds, missed (0/1), max missed calls before an automatic pause (0: never), unregistered (0/1).
# Ends the agent's part in a call if this call still holds it: a pause or log-out asked for during the
# call takes effect now; too many missed calls in a row pause the agent; otherwise wrap-up, then available.
_RELEASE = (
    _NOW
    + _SET_STATE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[2])
if ARGV[1] == '' then
  if holder then return 0 end
elseif holder ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
local missed = 0
if ARGV[3] == '1' then missed = redis.call('HINCRBY', KEYS[1], 'missed', 1)
else redis.call('HSET', KEYS[1], 'missed', 0) end
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'registered', '0')
  redis.call('SADD', 'dialer:agents:unregistered', redis.call('HGET', KEYS[1], 'id'))
end
local pending, pending_reason = unpack(redis.call('HMGET', KEYS[1], 'pending', 'pending_reason'))
redis.call('HSET', KEYS[1], 'call', '', 'pending', '', 'pending_reason', '', 'offer', '', 'offer_decision', '')
local wrap_up = tonumber(ARGV[2])
if pending and pending ~= '' then
  set_state(KEYS[1], pending, now, pending_reason)
elseif tonumber(ARGV[4]) > 0 and missed >= tonumber(ARGV[4]) then
  set_state(KEYS[1], 'paused', now, 'missed-calls')
else
  set_state(KEYS[1], wrap_up > 0 and 'wrap-up' or 'available', now + wrap_up, '')
end
return 1
"""
)

# KEYS: agent hash. ARGV: action, target state, reason, allowed states... An operator's action (log in,
# ready, pause, log out). An agent on a call keeps it: a pause or log-out is kept as ``pending`` and
# applied when the call releases the agent. Returns the state now, 'pending', or an error reply
# 'NOSUCH' / 'FROM <state>'.
_AGENT_ACTION = (
    _NOW
    + _SET_STATE
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return redis.error_reply('NOSUCH') end
local allowed = false
for i = 4, #ARGV do if ARGV[i] == state then allowed = true end end
if not allowed then return redis.error_reply('FROM ' .. state) end
if state == 'reserved' or state == 'ringing' or state == 'on-call' then
  redis.call('HSET', KEYS[1], 'pending', ARGV[2], 'pending_reason', ARGV[3])
  return 'pending'
end
if ARGV[2] == 'available' then redis.call('HSET', KEYS[1], 'missed', 0) end
set_state(KEYS[1], ARGV[2], now, ARGV[3])
return ARGV[2]
"""
)

# KEYS: agent hash. ARGV: registered (0/1), contact, when. What FreeSWITCH said of the agent's phone:
# an unregistered agent leaves the available set (so it is never offered a call), a registered one that
# is ready comes back.
_REGISTRATION = (
    _NOW
    + _SET_STATE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'registered', ARGV[1], 'contact', ARGV[2], 'registration_at', ARGV[3])
local id = redis.call('HGET', KEYS[1], 'id')
if ARGV[1] == '0' then redis.call('SADD', 'dialer:agents:unregistered', id)
else redis.call('SREM', 'dialer:agents:unregistered', id) end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'available' or state == 'wrap-up' then set_state(KEYS[1], state, now, '') end
return 1
"""
)

# No KEYS. ARGV: SSCAN cursor, page size. Of a page of agents, those in a busy state whose lease is gone: their
# worker died. A script rather than a read of every agent by every worker's reaper every few seconds
# (thousands of replies parsed in Python held up the worker's calls); a page at a time, since one pass over
# thousands of agents holds up Redis, and every call waiting on it, for milliseconds. Returns {cursor, orphans}.
_ORPHANS = """
local page = redis.call('SSCAN', 'dialer:agents', ARGV[1], 'COUNT', ARGV[2])
local orphans = {}
for _, id in ipairs(page[2]) do
  local state = redis.call('HGET', 'dialer:agent:' .. id, 'state')
  if (state == 'reserved' or state == 'ringing' or state == 'on-call')
     and redis.call('EXISTS', 'dialer:agent:' .. id .. ':lease') == 0 then
    table.insert(orphans, id)
  end
end
return {page[1], orphans}
"""

# KEYS: agent lease, agent hash. ARGV: call_id, state. The agent's state follows its call (ringing,
# on-call) only while the call holds it.
_ON_CALL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[2])
return 1
"""

# KEYS: agent lease. ARGV: call_id, lease ms. Renew the reservation if this call holds it.
_RENEW_AGENT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: agent hash. ARGV: call_id ('' = the current offer), decision (accept/skip). The agent's answer to a
# preview offer. Error replies: 'NOOFFER' (nothing offered, or another call's offer), 'DECIDED'.
_DECIDE = """
local offer, decided = unpack(redis.call('HMGET', KEYS[1], 'offer', 'offer_decision'))
if not offer or offer == '' or (ARGV[1] ~= '' and offer ~= ARGV[1]) then return redis.error_reply('NOOFFER') end
if decided and decided ~= '' then return redis.error_reply('DECIDED') end
redis.call('HSET', KEYS[1], 'offer_decision', ARGV[2])
return offer
"""


#: A hash field written beside a record update: (key, field, value).
HashWrite = tuple[str, str, bytes | str]


@dataclass(frozen=True)
class StreamAdd:
    """A stream entry appended beside a record update (a webhook event)."""

    key: str
    fields: Mapping[str, str]
    maxlen: int


@dataclass(frozen=True)
class SetRemove:
    """A member removed from a sorted set beside a record update (a campaign's dialing set)."""

    key: str
    member: str


@dataclass(frozen=True)
class ScriptRun:
    """One of the store's Lua scripts run beside a record update (``Store.on_call``), by its SHA alone: a
    pipeline would otherwise first ask Redis whether it has the script, one round trip more."""

    script: Any  # redis.commands.core.Script
    keys: tuple[str, ...]
    args: tuple[str, ...]


#: What may ride along with a record update, in the same round trip.
Write = HashWrite | StreamAdd | SetRemove | ScriptRun


def call_log_entry(call_id: str, note: Mapping[str, str]) -> StreamAdd:
    """An entry of the call's log stream (what ``dialer call --wait`` prints), as a write of its own."""
    return StreamAdd(call_log_key(call_id), note, LOG_MAXLEN)


def _apply(pipe: Any, writes: Iterable[Write]) -> list[tuple[int, ScriptRun]]:
    """Queue the writes; returns the scripts among them with their place in the pipeline's results."""
    scripts = []
    for write in writes:
        if isinstance(write, StreamAdd):
            pipe.xadd(write.key, dict(write.fields), maxlen=write.maxlen, approximate=True)
        elif isinstance(write, SetRemove):
            pipe.zrem(write.key, write.member)
        elif isinstance(write, ScriptRun):
            scripts.append((len(pipe), write))
            pipe.evalsha(write.script.sha, len(write.keys), *write.keys, *write.args)
        else:
            pipe.hset(*write)
    return scripts


def _execute(pipe: Any, scripts: list[tuple[int, ScriptRun]]) -> list[Any]:
    """Run a pipeline ``_apply`` filled. Its scripts went by SHA: one Redis no longer has (a restart) is loaded
    and run on its own, the rest of the transaction having been applied; any other error is raised."""
    results: list[Any] = pipe.execute(raise_on_error=not scripts)
    for index, run in scripts:
        if isinstance(results[index], redis.exceptions.NoScriptError):
            results[index] = run.script(keys=list(run.keys), args=list(run.args))  # loads it and runs it
    errors = [result for result in results if isinstance(result, redis.RedisError)]
    if errors:
        raise errors[0]
    return results


def _decode(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {_text(k): _text(v) for k, v in raw.items()}
    items = list(raw or [])
    return {_text(items[i]): _text(items[i + 1]) for i in range(0, len(items), 2)}


def _fields(fields: Mapping[str, str]) -> Mapping[str | bytes, str]:
    return cast("Mapping[str | bytes, str]", fields)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Store:
    """Typed access to the dialer's Redis state. Every call has Redis' own socket timeout."""

    def __init__(self, client: redis.Redis[bytes], lease_seconds: float = 30.0, max_missed: int = 3) -> None:
        self.redis = client
        self.lease_seconds = lease_seconds
        self.max_missed = max_missed  # missed calls in a row that pause an agent (0: never)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._adopt = client.register_script(_ADOPT)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._on_call = client.register_script(_ON_CALL)
        self._agent_action = client.register_script(_AGENT_ACTION)
        self._registration = client.register_script(_REGISTRATION)
        self._decide = client.register_script(_DECIDE)
        self._renew_agent = client.register_script(_RENEW_AGENT)
        self._orphans = client.register_script(_ORPHANS)

    @classmethod
    def from_url(
        cls,
        url: str,
        lease_seconds: float = 30.0,
        timeout: float = 5.0,
        max_connections: int = POOL_SIZE,
        max_missed: int = 3,
    ) -> Store:
        """A store on a blocking pool: hundreds of call greenlets share ``max_connections`` connections and
        wait (at most ``timeout``) for a free one. redis-py's default pool instead raises "Too many
        connections" once 100 commands are in flight at once, which failed calls mid-way at 500 per process."""
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=restart_retry(),
        )
        return cls(redis.Redis(connection_pool=pool), lease_seconds, max_missed)

    # ------------------------------------------------------------------ calls

    def claim(self, call_id: str, fields: Mapping[str, str]) -> dict[str, str] | None:
        """Claim an attempt. None: it is ours and new. A record: it was claimed before; do not dial."""
        args: list[str] = [call_id, str(self.lease_seconds)]
        for name, value in fields.items():
            args += [name, value]
        existing = self._claim(keys=[call_key(call_id), INFLIGHT], args=args)
        return _decode(existing) if existing else None

    def record(self, call_id: str) -> dict[str, str]:
        return _decode(self.redis.hgetall(call_key(call_id)))

    def update(
        self,
        call_id: str,
        fields: Mapping[str, str],
        note: Mapping[str, str] | None = None,
        also: Iterable[Write] = (),
    ) -> None:
        """Write fields of the record and, with ``note``, append an entry to the call's log stream; ``also``:
        more writes in the same round trip (the RQ job's meta, see ``jobs.calls``; webhook events)."""
        pipe = self.redis.pipeline(transaction=True)
        if fields:
            pipe.hset(call_key(call_id), mapping=_fields(fields))
        _execute(pipe, _apply(pipe, [call_log_entry(call_id, note), *also] if note else also))

    def finish(
        self, call_id: str, fields: Mapping[str, str], note: Mapping[str, str] | None, also: Iterable[Write] = ()
    ) -> dict[str, str]:
        """Write the final record and drop the in-flight lease, atomically; returns the whole record."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(call_key(call_id), mapping=_fields(fields))
        pipe.zrem(INFLIGHT, call_id)
        scripts = _apply(pipe, [call_log_entry(call_id, note), *also] if note else also)
        pipe.hgetall(call_key(call_id))
        return _decode(_execute(pipe, scripts)[-1])

    def call_log(self, call_id: str) -> list[dict[str, str]]:
        return [_decode(fields) for _id, fields in self.redis.xrange(call_log_key(call_id))]

    def renew(self, owner: str, call_ids: Iterable[str]) -> int:
        ids = list(call_ids)
        if not ids:
            return 0
        return int(self._renew(keys=[INFLIGHT], args=[owner, str(self.lease_seconds), *ids]))

    def expired(self, limit: int = 100) -> list[str]:
        now = self.redis_time()
        return [_text(x) for x in self.redis.zrangebyscore(INFLIGHT, "-inf", now, start=0, num=limit)]

    def adopt(self, call_id: str, owner: str) -> bool:
        return bool(self._adopt(keys=[INFLIGHT, call_key(call_id)], args=[call_id, owner, str(self.lease_seconds)]))

    def expire_lease(self, call_id: str) -> None:
        """Make an in-flight call adoptable right away (its worker is handing it back)."""
        self.redis.zadd(INFLIGHT, {call_id: 0}, xx=True)

    def in_flight(self) -> list[str]:
        return [_text(x) for x in self.redis.zrange(INFLIGHT, 0, -1)]

    def redis_time(self) -> float:
        seconds, micros = cast(tuple[int, int], self.redis.time())
        return seconds + micros / 1e6

    # ------------------------------------------------------------------ agents

    def add_agent(self, agent_id: str, group: str, endpoint: str) -> None:
        """Create an agent (logged out), or change its group and endpoint (its state stays)."""
        # The id goes on the wire (sofia_contact <id>, user/<id>) and the group into key names: refused here,
        # with the field named, rather than stored and skipped by every call that reserves the agent.
        dialstring.USER_ID.check("agent id", agent_id)
        dialstring.USER_ID.check("group", group)
        before = self.agent(agent_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(AGENTS, agent_id)
        pipe.hset(agent_key(agent_id), mapping={"id": agent_id, "group": group, "endpoint": endpoint})
        pipe.hsetnx(agent_key(agent_id), "state", AgentState.OFFLINE.value)
        if before and before.get("group") != group:
            score = self.redis.zscore(available_key(before["group"]), agent_id)
            pipe.zrem(available_key(before["group"]), agent_id)
            if score is not None:
                pipe.zadd(available_key(group), {agent_id: score})
        pipe.execute()

    def agent(self, agent_id: str) -> dict[str, str]:
        return _decode(self.redis.hgetall(agent_key(agent_id)))

    def agents(self) -> list[dict[str, str]]:
        ids = sorted(_text(x) for x in self.redis.smembers(AGENTS))
        pipe = self.redis.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hgetall(agent_key(agent_id))
        return [_decode(raw) for raw in pipe.execute()] if ids else []

    def agent_action(self, agent_id: str, target: AgentState, allowed: Iterable[AgentState], reason: str = "") -> str:
        """Move an agent to ``target`` if its state is one of ``allowed`` (atomically); returns the new
        state, or ``pending`` for an agent on a call (it takes effect when the call releases the agent).
        Raises ``AgentActionRefused``."""
        args = [target.value, target.value, reason, *(state.value for state in allowed)]
        try:
            return _text(self._agent_action(keys=[agent_key(agent_id)], args=args))
        except redis.ResponseError as exc:
            message = str(exc)
            raise AgentActionRefused(message[5:] if message.startswith("FROM ") else None) from exc

    def set_agent_ready(self, agent_id: str) -> None:
        """Make an agent available now (log in and ready). Unknown agents are an error (KeyError)."""
        try:
            self.agent_action(agent_id, AgentState.AVAILABLE, IDLE_STATES)
        except AgentActionRefused as exc:
            if exc.state is None:
                raise KeyError(f"agent {agent_id} is not known; add it first") from exc
            raise

    def set_registration(self, agent_id: str, registered: bool, contact: str = "") -> bool:
        """Record what the switch says of the agent's phone; False for an agent we do not know."""
        args = ["1" if registered else "0", contact, f"{time.time():.6f}"]
        return bool(self._registration(keys=[agent_key(agent_id)], args=args))

    def reserve_agent(self, group: str, call_id: str, dialing: str = "") -> str | None:
        """Reserve the longest-idle free agent of ``group`` for ``call_id``; ``dialing``: the campaign's set
        of calls still needing an agent (``dialer.campaigns.state.dialing_key``), left in the same step."""
        lease_ms = str(int(self.lease_seconds * 1000))
        keys = [available_key(group), dialing or f"{PREFIX}:none"]
        agent = self._reserve(keys=keys, args=[call_id, lease_ms])
        return _text(agent) if agent else None

    def renew_agent(self, agent_id: str, call_id: str) -> bool:
        """Keep a reservation alive while its call waits (for pacing, a preview decision) before it is claimed."""
        return bool(self._renew_agent(keys=[agent_lease_key(agent_id)], args=[call_id, int(self.lease_seconds * 1000)]))

    def agent_on_call(self, agent_id: str, call_id: str, state: AgentState = AgentState.ON_CALL) -> bool:
        run = self.on_call(agent_id, call_id, state)
        return bool(run.script(keys=list(run.keys), args=list(run.args)))

    def on_call(self, agent_id: str, call_id: str, state: AgentState = AgentState.ON_CALL) -> ScriptRun:
        """``agent_on_call`` as a write to send with a record update: the agent's state, if the call holds it."""
        return ScriptRun(self._on_call, (agent_lease_key(agent_id), agent_key(agent_id)), (call_id, state.value))

    def release_agent(
        self, agent_id: str, call_id: str, *, wrap_up: float = 0.0, missed: bool = False, unregistered: bool = False
    ) -> bool:
        """Give the agent back (after wrap-up) if ``call_id`` still holds it: see ``_RELEASE``."""
        keys = [agent_key(agent_id), agent_lease_key(agent_id)]
        args = [call_id, str(wrap_up), "1" if missed else "0", str(self.max_missed), "1" if unregistered else "0"]
        return bool(self._release(keys=keys, args=args))

    def offer(self, agent_id: str, call_id: str) -> None:
        """Show a preview offer to the reserved agent (the API shows the contact behind ``call_id``)."""
        self.redis.hset(agent_key(agent_id), mapping={"offer": call_id, "offer_decision": ""})

    def decide(self, agent_id: str, decision: str, call_id: str = "") -> str:
        """The agent's answer (accept/skip) to its preview offer; returns the call id. Raises ``NoOffer``."""
        try:
            return _text(self._decide(keys=[agent_key(agent_id)], args=[call_id, decision]))
        except redis.ResponseError as exc:
            raise NoOffer(str(exc)) from exc

    def free_orphaned_agents(self, pause: Callable[[], object] = lambda: None, page: int = 100) -> list[str]:
        """Agents left reserved/ringing/on-call by a dead worker (lease expired) take calls again. They are
        looked at ``page`` agents per round trip, with ``pause()`` between (the worker yields to its calls)."""
        cursor, freed = "0", set[str]()
        while True:
            cursor, orphans = self._orphans(args=[cursor, page])
            freed.update(agent_id for agent_id in map(_text, orphans) if self.release_agent(agent_id, ""))
            if _text(cursor) == "0":
                return sorted(freed)
            pause()

    def unregistered_agents(self) -> list[str]:
        """Agents last known unregistered (``dialer.registrations`` asks the switch about them again)."""
        return sorted(_text(x) for x in self.redis.smembers(UNREGISTERED))
