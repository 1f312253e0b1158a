"""Pacing in Redis: calls-per-second limits, concurrent-call caps and gateway back-off, for all workers.

Every originate takes, in one Lua script (so atomically, all or nothing, across any number of
worker processes), one token from each CPS limit that applies (global, its gateway, its campaign)
and one lease from each concurrency cap that applies (its gateway, its campaign). A failover try on
another gateway is another originate: it paces again, on the new gateway.

Rate limit: GCRA (the "virtual scheduling" form of a token bucket), times in Redis microseconds.
For a limit of ``c`` calls per second and a safety ``margin`` ``m`` (``DIALER_PACING_MARGIN``), the
emission interval is ``T = (1 + m) / c`` and the lateness tolerance ``tau = m / 4`` seconds. Each
limit keeps one number, its theoretical arrival time ``TAT``. A call is granted at Redis time ``t``
only if ``t >= TAT`` for every limit; then each limit's ``TAT`` becomes ``TAT + T`` if the grant was
at most ``tau`` late (``TAT >= t - tau``), else ``t + T`` (an idle limit starts afresh, with no credit).

Why no one-second window can hold more than ``ceil(c)`` originates (write ``n = ceil(c)``): take
grants ``t_k`` and ``t_{k+n}`` of one limit. After grant ``k``, ``TAT >= t_k - tau + T`` (either
branch), each later grant adds at least ``T``, and grant ``k+n`` needs ``t_{k+n} >= TAT``. Hence
``t_{k+n} - t_k >= n*T - tau >= (1 + m) - m/4 = 1 + 3m/4`` seconds: any ``n + 1`` grants span more
than one second, with ``A = 3m/4`` (22.5 ms at 3%) to spare for the delivery delay between the grant
and the switch receiving the originate. The worker keeps that delay within ``A`` from both ends: an
originate that would leave later than ``A`` after its grant takes fresh tokens (``Pacer.fresh``), and
one the switch acknowledges later than that (a switch slow to read its socket) pushes every limit it
drew on back by the excess ``d`` (``Pacer.delivered``: ``TAT += d``, so ``t_{k+n} >= t_k + 1 + A + d``,
a second after the switch had it), before grant ``k+n`` as long as the reply comes within a second.
In the usual case the spare is larger: after an idle spell the first ``n + 1`` grants span
``n*T >= 1 + m``, and a saturated limit's grants span ``n*T`` minus the (sub-millisecond) lateness of
the earliest one.
``tau`` lets waiters wake a little late (7.5 ms at 3%: more than gevent's lateness on a busy worker,
while most of the margin stays for delivery) without the lateness adding up from grant to grant, so under
a full queue the achieved rate is ``c / (1 + m)`` (97% of the limit with the default 3%). A plain
token bucket of capacity ``c`` would allow ``2c`` in a window that straddles a refill; here the
burst is one call.

Concurrency caps are leases: a sorted set of call ids scored by lease expiry (Redis time). A cap is
full when it holds ``max_concurrent`` unexpired leases; expired ones (their worker died) are dropped
by the next acquire. The runtime's lease loop renews the leases of its running calls every third of
the lease and releases them on every exit path; a worker that adopts a dead worker's call takes its
leases again (``Pacer.hold``), so a call that outlived its worker still counts.

Waiting: ``Pacer.acquire`` returns a :class:`Permit` or raises :class:`PacingTimeout` after at most
``timeout`` seconds (``DIALER_PACING_WAIT_TIMEOUT``). The script says how long until the next token,
so a waiter sleeps exactly that long (a full concurrency cap is polled every ``CAP_POLL`` s). Within
one process, calls that need the same limits queue behind one turnstile and only its head asks
Redis, so a deep queue costs one script run per grant per process, not one per waiting call. On
timeout nothing was taken, the attempt was not claimed and nobody was dialled: ``Runtime.place``
lets ``PacingTimeout`` propagate and the RQ job fails; its ``Retry`` (``enqueue_call``: two more runs)
runs it again as a normal, unclaimed attempt (DESIGN.md property 1 holds: the claim is taken after
pacing). A job that times out on every run ends FAILED with ``PacingTimeout``, its contact undialled.

Gateway back-off: each network failure of a gateway (a customer leg that ended with a network-class
cause before any 180/183/200, see :func:`is_network_failure`) is recorded in a sliding window; when
``threshold`` failures fall within ``window`` seconds the gateway is backed off for ``cooldown``
seconds. A backed-off gateway is skipped while an untried healthy gateway of the call remains, and
tried in its turn only when nothing healthy is left (so a contact is never failed without a dial).

Keys (also listed in ``dialer.store``)::

    dialer:pacing:cps:global                 string  GCRA TAT of the global CPS limit (Redis µs)
    dialer:pacing:cps:gateway:<gw>           string  GCRA TAT of a gateway's CPS limit
    dialer:pacing:cps:campaign:<campaign>    string  GCRA TAT of a campaign's CPS limit
    dialer:pacing:calls:gateway:<gw>         zset    call id -> lease expiry (Redis µs): calls on the gateway
    dialer:pacing:calls:campaign:<campaign>  zset    call id -> lease expiry: the campaign's calls in progress
    dialer:pacing:gateway:<gw>:failures      zset    call id -> time of its network failure (sliding window)
    dialer:pacing:gateway:<gw>:backoff       string  present while the gateway is backed off (PX cool-down)

Errors::

    PacingError
     └── PacingTimeout      no token/lease within the wait; nothing was taken, nobody dialled
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

import gevent
import gevent.lock
import redis

from dialer import metrics
from settings import Settings

PREFIX = "dialer:pacing"
GLOBAL_CPS = f"{PREFIX}:cps:global"
CAP_POLL = 0.05  # seconds between looks at a full concurrency cap (a call's end is not announced)

#: Hangup causes that mean the network/gateway failed, not the customer: worth another gateway.
NETWORK_CAUSES = frozenset(
    {
        "NORMAL_TEMPORARY_FAILURE",  # 41; SIP 503
        "DESTINATION_OUT_OF_ORDER",  # 27; SIP 502
        "NETWORK_OUT_OF_ORDER",  # 38
        "GATEWAY_DOWN",  # 609: the gateway's ping failed
        "RECOVERY_ON_TIMER_EXPIRE",  # 102; SIP 408/504 from the trunk: no final response in time
        "INVALID_GATEWAY",  # 608: not configured on this switch
        "SERVICE_UNAVAILABLE",  # 63
        "NORMAL_CIRCUIT_CONGESTION",  # 34
        "SWITCH_CONGESTION",  # 42
    }
)
NETWORK_SIP_STATUSES = frozenset({500, 502, 503, 504})


def is_network_failure(cause: str | None, sip_status: int | None = None) -> bool:
    """Whether a leg that ended with ``cause`` (and ``sip_status``) failed in the network or gateway."""
    return cause in NETWORK_CAUSES or sip_status in NETWORK_SIP_STATUSES


def cps_key(level: str, name: str = "") -> str:
    return GLOBAL_CPS if level == "global" else f"{PREFIX}:cps:{level}:{name}"


def calls_key(level: str, name: str) -> str:
    return f"{PREFIX}:calls:{level}:{name}"


def failures_key(gateway: str) -> str:
    return f"{PREFIX}:gateway:{gateway}:failures"


def backoff_key(gateway: str) -> str:
    return f"{PREFIX}:gateway:{gateway}:backoff"


class PacingError(Exception):
    """Root of the pacing errors."""


class PacingTimeout(PacingError):
    """No token or lease was free within the wait. Nothing was taken and nobody was dialled."""


@dataclass(frozen=True)
class GatewayLimits:
    cps: float | None = None
    max_concurrent: int | None = None


@dataclass(frozen=True)
class PacingConfig:
    global_cps: float | None = None
    gateways: Mapping[str, GatewayLimits] = field(default_factory=dict)
    margin: float = 0.03
    wait_timeout: float = 60.0
    lease_seconds: float = 30.0
    failure_threshold: int = 3
    failure_window: float = 30.0
    backoff_seconds: float = 30.0


@dataclass(frozen=True)
class Rate:
    """One CPS limit: emission interval and lateness tolerance (the script's), and how long after its grant
    an originate may leave (the worker's, ``Pacer.fresh``), in microseconds."""

    key: str
    interval_us: int
    tolerance_us: int
    allowance_us: int

    @classmethod
    def of(cls, key: str, cps: float, margin: float) -> Rate:
        tolerance = margin / 4
        return cls(
            key,
            math.ceil(1_000_000 * (1 + margin) / cps),
            int(1_000_000 * tolerance),
            int(1_000_000 * (margin - tolerance)),
        )


@dataclass(frozen=True)
class Cap:
    key: str
    limit: int


@dataclass(frozen=True)
class Permit:
    """What a granted call holds until it ends: its concurrency leases (rate tokens are spent), and until
    when (``time.monotonic()``) its tokens are good for an originate (``Pacer.fresh``)."""

    call_id: str
    lease_keys: tuple[str, ...] = ()
    rates: tuple[Rate, ...] = ()
    originate_by: float = math.inf


class Verdict(IntEnum):
    GRANTED = 0
    CAP_FULL = 1
    TOO_SOON = 2


_NOW_US = """
local now
if ARGV[2] ~= '' then now = tonumber(ARGV[2])
else local t = redis.call('TIME'); now = tonumber(t[1]) * 1000000 + tonumber(t[2]) end
"""

# KEYS: n rate keys, then the cap keys. ARGV: call_id, now (µs, '' for Redis TIME), lease µs, n,
# (interval µs, tolerance µs) per rate, limit per cap. Returns {verdict, µs until the rates allow}.
_ACQUIRE = (
    _NOW_US
    + """
local n = tonumber(ARGV[4])
local full = false
for i = n + 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if not redis.call('ZSCORE', KEYS[i], ARGV[1]) and redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[4 + n + i]) then
    full = true
  end
end
local wait, tats = 0, {}
for i = 1, n do
  tats[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tats[i] - now > wait then wait = tats[i] - now end
end
if full then return {1, wait} end
if wait > 0 then return {2, wait} end
for i = 1, n do
  local base = tats[i]  -- at most tau late: keep the schedule; idle: start afresh
  if base < now - tonumber(ARGV[4 + 2 * i]) then base = now end
  local tat = base + tonumber(ARGV[3 + 2 * i])
  redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 60000)
end
local lease = tonumber(ARGV[3])
for i = n + 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], math.floor(lease / 1000) + 60000)
end
return {0, 0}
"""
)

# KEYS: rate keys. ARGV: call_id, now, µs. Moves each limit's schedule (its TAT) that much later.
_PUSH_BACK = (
    _NOW_US
    + """
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat > 0 then
    tat = tat + tonumber(ARGV[3])
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.max(0, math.floor((tat - now) / 1000)) + 60000)
  end
end
return #KEYS
"""
)

# KEYS: cap keys. ARGV: call_id, now, lease µs, mode. Extends the leases the call still holds (XX: a
# released or expired lease is not brought back), or with mode 'add' takes them whatever the caps say.
_RENEW = (
    _NOW_US
    + """
local lease = tonumber(ARGV[3])
for i = 1, #KEYS do
  if ARGV[4] == 'add' then redis.call('ZADD', KEYS[i], now + lease, ARGV[1])
  else redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[1]) end
  redis.call('PEXPIRE', KEYS[i], math.floor(lease / 1000) + 60000)
end
return #KEYS
"""
)

# KEYS: failures zset, backoff key. ARGV: call_id, now, window µs, threshold, cool-down ms.
# Returns 1 when this failure puts the gateway into back-off.
_FAILURE = (
    _NOW_US
    + """
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  redis.call('SET', KEYS[2], string.format('%d', now), 'PX', ARGV[5])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)


@dataclass(frozen=True)
class Request:
    """The limits one originate must pass: built by :meth:`Pacer.request`, run by the script."""

    call_id: str
    rates: tuple[Rate, ...]
    caps: tuple[Cap, ...]

    @property
    def turnstile(self) -> str:
        return " ".join([r.key for r in self.rates] + [c.key for c in self.caps])

    def script_keys(self) -> list[str]:
        return [r.key for r in self.rates] + [c.key for c in self.caps]

    def args(self, now_us: str, lease_us: int) -> list[str | int]:
        args: list[str | int] = [self.call_id, now_us, lease_us, len(self.rates)]
        for rate in self.rates:
            args += [rate.interval_us, rate.tolerance_us]
        args += [cap.limit for cap in self.caps]
        return args


class _Turnstile:
    """A per-process queue for one set of limits (a class so it can live in a weak dictionary)."""

    def __init__(self) -> None:
        self.lock = gevent.lock.Semaphore()


class Pacer:
    """Takes and gives back pacing tokens and leases in Redis; one per worker process.

    ``clock_us``, ``sleep`` and ``monotonic`` are for tests: a fake clock (microseconds, passed to the
    scripts instead of Redis ``TIME``) and a sleep that advances it.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        config: PacingConfig,
        *,
        clock_us: Callable[[], int] | None = None,
        sleep: Callable[[float], Any] = gevent.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = client
        self.config = config
        self._clock_us = clock_us
        self._sleep = sleep
        self._monotonic = monotonic
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._push_back = client.register_script(_PUSH_BACK)
        self._failure = client.register_script(_FAILURE)
        self._turnstiles: weakref.WeakValueDictionary[str, _Turnstile] = weakref.WeakValueDictionary()

    def _now(self) -> str:
        return "" if self._clock_us is None else str(self._clock_us())

    @property
    def _lease_us(self) -> int:
        return int(self.config.lease_seconds * 1_000_000)

    # ------------------------------------------------------------------ tokens and leases

    def request(
        self,
        call_id: str,
        gateway: str,
        campaign: str,
        campaign_cps: float | None = None,
        campaign_max_concurrent: int | None = None,
    ) -> Request:
        """The limits that apply to an originate of ``call_id`` on ``gateway`` for ``campaign``."""
        config, margin = self.config, self.config.margin
        gateway_limits = config.gateways.get(gateway, GatewayLimits())
        rates: list[Rate] = []
        if config.global_cps is not None:
            rates.append(Rate.of(GLOBAL_CPS, config.global_cps, margin))
        if gateway_limits.cps is not None:
            rates.append(Rate.of(cps_key("gateway", gateway), gateway_limits.cps, margin))
        if campaign_cps is not None:
            rates.append(Rate.of(cps_key("campaign", campaign), campaign_cps, margin))
        caps: list[Cap] = []
        if gateway_limits.max_concurrent is not None:
            caps.append(Cap(calls_key("gateway", gateway), gateway_limits.max_concurrent))
        if campaign_max_concurrent is not None:
            caps.append(Cap(calls_key("campaign", campaign), campaign_max_concurrent))
        return Request(call_id, tuple(rates), tuple(caps))

    def try_acquire(self, request: Request) -> tuple[Verdict, float]:
        """One atomic attempt: the verdict and, when too soon, the seconds until the rates allow."""
        if not request.rates and not request.caps:
            return Verdict.GRANTED, 0.0
        verdict, wait_us = self._acquire(keys=request.script_keys(), args=request.args(self._now(), self._lease_us))
        return Verdict(int(verdict)), int(wait_us) / 1_000_000

    def acquire(self, request: Request, timeout: float | None = None) -> Permit:
        """Wait (at most ``timeout`` seconds) until every limit of ``request`` allows, and take them."""
        limit = self.config.wait_timeout if timeout is None else timeout
        started = self._monotonic()
        deadline = started + limit
        permit = Permit(request.call_id, tuple(cap.key for cap in request.caps))
        if not request.rates and not request.caps:
            return permit
        turnstile = self._turnstiles.get(request.turnstile)
        if turnstile is None:
            turnstile = self._turnstiles[request.turnstile] = _Turnstile()
        if not turnstile.lock.acquire(timeout=max(0.0, deadline - self._monotonic())):
            metrics.paced(self._monotonic() - started, granted=False)
            raise PacingTimeout(f"{request.call_id}: no pacing token within {limit:g} s (queued in this worker)")
        try:
            while True:
                asked = self._monotonic()
                verdict, wait = self.try_acquire(request)
                if verdict is Verdict.GRANTED:
                    metrics.paced(self._monotonic() - started, granted=True)
                    if not request.rates:
                        return permit
                    allowance = min(rate.allowance_us for rate in request.rates) / 1_000_000
                    return replace(permit, rates=request.rates, originate_by=asked + allowance)
                remaining = deadline - self._monotonic()
                pause = wait if verdict is Verdict.TOO_SOON else CAP_POLL
                if (verdict is Verdict.TOO_SOON and wait > remaining) or remaining <= 0:
                    what = "token" if verdict is Verdict.TOO_SOON else "concurrency lease"
                    metrics.paced(self._monotonic() - started, granted=False)
                    raise PacingTimeout(f"{request.call_id}: no pacing {what} within {limit:g} s")
                self._sleep(min(pause, remaining))
        finally:
            turnstile.lock.release()

    def fresh(self, permit: Permit, timeout: float | None = None) -> Permit:
        """The permit, with rate tokens still good for an originate sent now. The window proof above allows
        ``3m/4`` between a grant and the switch receiving the originate; a worker held up longer (starved
        of CPU, a slow claim) must not send it on an old grant, or two grants' originates could arrive
        closer together than the limit allows: it takes fresh tokens (waiting as ``acquire`` does). The
        grant is timed from before the script was sent, so the check errs on the safe side."""
        while self._monotonic() > permit.originate_by:
            renewed = self.acquire(Request(permit.call_id, permit.rates, ()), timeout)
            permit = replace(renewed, lease_keys=permit.lease_keys)
        return permit

    def delivered(self, permit: Permit) -> float:
        """The switch acknowledged the originate of ``permit`` just now. When that is later than the window
        proof allows (``3m/4`` after the grant), it may have read the originate that late, closer to the
        next grants than the limit allows: every rate it drew on is pushed back by the excess. Returns the
        excess in seconds (0.0: on time, nothing asked of Redis)."""
        excess = self._monotonic() - permit.originate_by
        if excess <= 0 or not permit.rates:
            return 0.0
        keys = [rate.key for rate in permit.rates]
        self._push_back(keys=keys, args=[permit.call_id, self._now(), math.ceil(excess * 1_000_000)])
        return excess

    def hold(self, call_id: str, gateway: str, campaign: str) -> Permit:
        """Count an adopted call (its worker died, so its leases expired) against the caps again, without
        a cap check: it is live on the switch whatever the cap says. The campaign's cap is known only
        to its calls, so its lease is taken when the campaign's lease set exists (others hold one)."""
        keys = []
        if self.config.gateways.get(gateway, GatewayLimits()).max_concurrent is not None:
            keys.append(calls_key("gateway", gateway))
        if campaign and self.redis.exists(calls_key("campaign", campaign)):
            keys.append(calls_key("campaign", campaign))
        if keys:
            pipe = self.redis.pipeline(transaction=False)
            self._renew(keys=keys, args=[call_id, self._now(), self._lease_us, "add"], client=pipe)
            pipe.execute()
        return Permit(call_id, tuple(keys))

    def renew(self, permits: Iterable[Permit]) -> None:
        """Extend the leases of calls still running (the runtime's lease loop, every third of a lease)."""
        now, lease = self._now(), self._lease_us
        held = [p for p in permits if p.lease_keys]
        if not held:
            return
        pipe = self.redis.pipeline(transaction=False)
        for permit in held:
            self._renew(keys=list(permit.lease_keys), args=[permit.call_id, now, lease, "renew"], client=pipe)
        pipe.execute()

    def release(self, permit: Permit, keys: Sequence[str] | None = None) -> None:
        """Give back the call's leases (or only ``keys`` of them)."""
        for key in permit.lease_keys if keys is None else keys:
            self.redis.zrem(key, permit.call_id)

    def holders(self, key: str) -> list[str]:
        """The calls holding unexpired leases on a cap key (for status pages and tests)."""
        now = int(self._clock_us()) if self._clock_us is not None else None
        if now is None:
            seconds, micros = self.redis.time()
            now = int(seconds) * 1_000_000 + int(micros)
        return [m.decode() for m in self.redis.zrangebyscore(key, now, "+inf")]

    # ------------------------------------------------------------------ gateway health

    def record_failure(self, gateway: str, call_id: str) -> bool:
        """Count a network failure of ``gateway``; True when it puts the gateway into back-off."""
        config = self.config
        keys = [failures_key(gateway), backoff_key(gateway)]
        args: list[str | int] = [
            call_id,
            self._now(),
            int(config.failure_window * 1_000_000),
            config.failure_threshold,
            max(1, int(config.backoff_seconds * 1000)),
        ]
        return bool(self._failure(keys=keys, args=args))

    def backed_off(self, gateways: Sequence[str]) -> set[str]:
        if not gateways:
            return set()
        flags = self.redis.mget([backoff_key(g) for g in gateways])
        return {g for g, flag in zip(gateways, flags, strict=True) if flag is not None}

    def next_gateway(self, gateways: Sequence[str], tried: Iterable[str] = ()) -> str | None:
        """The gateway to try next: the first untried healthy one, else the first untried one."""
        done = set(tried)
        untried = [g for g in gateways if g not in done]
        if len(untried) < 2:  # nothing to choose between: no need to ask Redis which are backed off
            return untried[0] if untried else None
        down = self.backed_off(untried)
        return next((g for g in untried if g not in down), untried[0])


def config_from_settings(settings: Settings) -> PacingConfig:
    """The pacing knobs of the process's settings."""
    return PacingConfig(
        global_cps=settings.global_cps,
        gateways={
            name: GatewayLimits(limits.cps, limits.max_concurrent) for name, limits in settings.gateway_limits.items()
        },
        margin=settings.pacing_margin,
        wait_timeout=settings.pacing_wait_timeout,
        lease_seconds=settings.call_lease_seconds,
        failure_threshold=settings.gateway_failure_threshold,
        failure_window=settings.gateway_failure_window,
        backoff_seconds=settings.gateway_backoff_seconds,
    )
