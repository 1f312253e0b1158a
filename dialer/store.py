"""State in Redis: call records, attempt claims, in-flight leases, agents and their reservations.

Every key the dialer writes, in one place:

    dialer:call:<call_id>              hash    the attempt's record (state, uuids, timestamps, cause, outcome, owner)
    dialer:call:<call_id>:log          stream  its transitions and out-of-order events, in order
    dialer:inflight                    zset    call_id -> lease expiry (Redis time, seconds); owners renew,
                                               anyone may adopt an expired one and reconcile it
    dialer:agents                      set     agent ids
    dialer:agent:<id>                  hash    id, group, endpoint, state, call, missed
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
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from dialer.esl import dialstring

PREFIX = "dialer"
INFLIGHT = f"{PREFIX}:inflight"
AGENTS = f"{PREFIX}:agents"
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
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


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

# KEYS: available zset. ARGV: call_id, lease ms. Take the longest-idle agent whose wrap-up is over.
_RESERVE = (
    _NOW
    + """
local candidates = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
for _, id in ipairs(candidates) do
  redis.call('ZREM', KEYS[1], id)
  local key = 'dialer:agent:' .. id
  local state = redis.call('HGET', key, 'state')
  if (state == 'available' or state == 'wrap-up')
     and redis.call('SET', key .. ':lease', ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('HSET', key, 'state', 'reserved', 'call', ARGV[1])
    return id
  end
end
return false
"""
)

# KEYS: agent hash, lease. ARGV: call_id, wrap-up seconds, missed (0/1), next state.
# Releases the agent only if this call still holds it; the available zset is the agent's group's.
_RELEASE = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local available = 'dialer:agents:' .. (redis.call('HGET', KEYS[1], 'group') or '') .. ':available'
redis.call('DEL', KEYS[2])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'missed', 1) else redis.call('HSET', KEYS[1], 'missed', 0) end
redis.call('HSET', KEYS[1], 'call', '', 'state', ARGV[4])
if ARGV[4] == 'wrap-up' or ARGV[4] == 'available' then
  redis.call('ZADD', available, now + tonumber(ARGV[2]), redis.call('HGET', KEYS[1], 'id'))
end
return 1
"""
)

# KEYS: agent lease, agent hash. ARGV: call_id, state. The agent is on this call only if the call holds it.
_ON_CALL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[2])
return 1
"""


#: A hash field written beside a record update: (key, field, value).
HashWrite = tuple[str, str, bytes | str]


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

    def __init__(self, client: redis.Redis[bytes], lease_seconds: float = 30.0) -> None:
        self.redis = client
        self.lease_seconds = lease_seconds
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._adopt = client.register_script(_ADOPT)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._on_call = client.register_script(_ON_CALL)

    @classmethod
    def from_url(
        cls, url: str, lease_seconds: float = 30.0, timeout: float = 5.0, max_connections: int = POOL_SIZE
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
        return cls(redis.Redis(connection_pool=pool), lease_seconds)

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
        also: Iterable[HashWrite] = (),
    ) -> None:
        """Write fields of the record and, with ``note``, append an entry to the call's log stream; ``also``:
        more hash fields to set in the same round trip (e.g. the RQ job's meta, see ``jobs.calls``)."""
        pipe = self.redis.pipeline(transaction=True)
        if fields:
            pipe.hset(call_key(call_id), mapping=_fields(fields))
        if note:
            pipe.xadd(call_log_key(call_id), dict(note), maxlen=LOG_MAXLEN, approximate=True)
        for key, name, value in also:
            pipe.hset(key, name, value)
        pipe.execute()

    def finish(
        self, call_id: str, fields: Mapping[str, str], note: Mapping[str, str], also: Iterable[HashWrite] = ()
    ) -> dict[str, str]:
        """Write the final record and drop the in-flight lease, atomically; returns the whole record."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(call_key(call_id), mapping=_fields(fields))
        pipe.xadd(call_log_key(call_id), dict(note), maxlen=LOG_MAXLEN, approximate=True)
        pipe.zrem(INFLIGHT, call_id)
        for key, name, value in also:
            pipe.hset(key, name, value)
        pipe.hgetall(call_key(call_id))
        return _decode(pipe.execute()[-1])

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
        # The id goes on the wire (sofia_contact <id>, user/<id>) and the group into key names: refused here,
        # with the field named, rather than stored and skipped by every call that reserves the agent.
        dialstring.USER_ID.check("agent id", agent_id)
        dialstring.USER_ID.check("group", group)
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(AGENTS, agent_id)
        pipe.hset(agent_key(agent_id), mapping={"id": agent_id, "group": group, "endpoint": endpoint})
        pipe.hsetnx(agent_key(agent_id), "state", AgentState.OFFLINE.value)
        pipe.execute()

    def agent(self, agent_id: str) -> dict[str, str]:
        return _decode(self.redis.hgetall(agent_key(agent_id)))

    def agents(self) -> list[dict[str, str]]:
        ids = sorted(_text(x) for x in self.redis.smembers(AGENTS))
        return [self.agent(agent_id) for agent_id in ids]

    def set_agent_ready(self, agent_id: str) -> None:
        """Make an agent available now (log in / ready). Unknown agents are an error."""
        info = self.agent(agent_id)
        if not info:
            raise KeyError(f"agent {agent_id} is not known; add it first")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(agent_key(agent_id), mapping={"state": AgentState.AVAILABLE.value, "missed": "0"})
        pipe.zadd(available_key(info["group"]), {agent_id: time.time()})
        pipe.execute()

    def set_agent_unavailable(self, agent_id: str, state: AgentState) -> None:
        """Pause or log out: the agent takes no new call (a call in progress keeps it)."""
        info = self.agent(agent_id)
        if not info:
            raise KeyError(f"agent {agent_id} is not known")
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(available_key(info["group"]), agent_id)
        pipe.hset(agent_key(agent_id), "state", state.value)
        pipe.execute()

    def reserve_agent(self, group: str, call_id: str) -> str | None:
        lease_ms = str(int(self.lease_seconds * 1000))
        agent = self._reserve(keys=[available_key(group)], args=[call_id, lease_ms])
        return _text(agent) if agent else None

    def agent_on_call(self, agent_id: str, call_id: str) -> None:
        self._on_call(keys=[agent_lease_key(agent_id), agent_key(agent_id)], args=[call_id, AgentState.ON_CALL.value])

    def release_agent(
        self,
        agent_id: str,
        call_id: str,
        *,
        wrap_up: float = 0.0,
        missed: bool = False,
        state: AgentState | None = None,
    ) -> bool:
        """Give the agent back (after wrap-up) if ``call_id`` still holds it."""
        next_state = state or (AgentState.WRAP_UP if wrap_up > 0 else AgentState.AVAILABLE)
        keys = [agent_key(agent_id), agent_lease_key(agent_id)]
        args = [call_id, str(wrap_up), "1" if missed else "0", next_state.value]
        return bool(self._release(keys=keys, args=args))

    def free_orphaned_agents(self) -> list[str]:
        """Agents left reserved/on-call by a dead worker (lease expired) become available again."""
        # Two pipelined round trips for all agents, not one per agent: every worker's reaper runs this every
        # few seconds, and with thousands of agents the per-agent reads cost a worker more than its calls.
        ids = sorted(_text(x) for x in self.redis.smembers(AGENTS))
        pipe = self.redis.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hget(agent_key(agent_id), "state")
        held_states = (AgentState.RESERVED.value, AgentState.ON_CALL.value)
        held = [a for a, state in zip(ids, pipe.execute(), strict=True) if state and _text(state) in held_states]
        for agent_id in held:
            pipe.exists(agent_lease_key(agent_id))
        freed = []
        for agent_id, leased in zip(held, pipe.execute() if held else [], strict=True):
            if not leased:
                self.set_agent_ready(agent_id)
                freed.append(agent_id)
        return freed
