"""The pacing scripts against a real Redis, driven by a fake clock (passed to the scripts instead of
Redis ``TIME``), so windows, waits and lease expiry are exact and the tests take no wall time."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import gevent
import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dialer.pacing import (
    GLOBAL_CPS,
    GatewayLimits,
    Pacer,
    PacingConfig,
    PacingTimeout,
    Permit,
    Verdict,
    calls_key,
    cps_key,
)
from tests.counting import CountingConnection, counting_client

from .windows import achieved_rate, max_in_any_window

START_US = 1_800_000_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now_us = START_US
        self.lateness: float = 0.0  # extra seconds each sleep oversleeps (a busy worker wakes late)

    def us(self) -> int:
        return self.now_us

    def monotonic(self) -> float:
        return self.now_us / 1e6

    def sleep(self, seconds: float) -> None:
        self.advance(seconds + self.lateness)

    def advance(self, seconds: float) -> None:
        self.now_us += max(0, round(seconds * 1e6))


def fake_pacer(client: redis.Redis, clock: FakeClock, **config: object) -> Pacer:
    return Pacer(
        client,
        PacingConfig(**config),
        clock_us=clock.us,
        sleep=clock.sleep,
        monotonic=clock.monotonic,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def raw_client(redis_url: str) -> Iterator[redis.Redis]:
    """For hypothesis (which reruns a test body without re-running fixtures): the body flushes itself."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.flushdb()
    client.close()


# ---------------------------------------------------------------------- the window property


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: hundreds of script runs per example
)
@given(
    global_cps=st.one_of(st.none(), st.integers(1, 60).map(float), st.floats(0.5, 60)),
    campaign_cps=st.one_of(st.integers(1, 30).map(float), st.floats(0.3, 30)),
    margin=st.sampled_from([0.0, 0.01, 0.03, 0.1]),
    attempts=st.lists(
        st.tuples(
            st.one_of(st.sampled_from([0, 1, 1_000, 20_000]), st.integers(0, 120_000)),
            st.sampled_from(["a", "b"]),
            st.sampled_from(["pstn", "pstn2"]),
        ),
        min_size=150,
        max_size=600,
    ),
)
def test_no_one_second_window_ever_holds_more_than_the_limit(
    raw_client: redis.Redis,
    global_cps: float | None,
    campaign_cps: float,
    margin: float,
    attempts: list[tuple[int, str, str]],
) -> None:
    """Whatever the arrival pattern (bursts, gaps, several campaigns and gateways at once), the grants of
    every limit keep ``ceil(rate)+1`` apart by at least ``1 + 3 margin/4`` seconds, so no one-second
    window holds more than ``ceil(rate)`` of them."""
    raw_client.flushdb()
    clock = FakeClock()
    gateways = {"pstn": GatewayLimits(cps=7.0), "pstn2": GatewayLimits(cps=2.5)}
    pacer = fake_pacer(raw_client, clock, global_cps=global_cps, gateways=gateways, margin=margin)
    rates = {cps_key("gateway", "pstn"): 7.0, cps_key("gateway", "pstn2"): 2.5}
    rates |= {cps_key("campaign", "a"): campaign_cps, cps_key("campaign", "b"): campaign_cps}
    if global_cps is not None:
        rates[GLOBAL_CPS] = global_cps
    granted: dict[str, list[int]] = {key: [] for key in rates}
    for n, (gap_us, campaign, gateway) in enumerate(attempts):
        clock.now_us += gap_us
        request = pacer.request(f"c{n}", gateway, campaign, campaign_cps)
        verdict, wait = pacer.try_acquire(request)
        if verdict is Verdict.GRANTED:
            for rate in request.rates:
                granted[rate.key].append(clock.now_us)
        else:
            assert verdict is Verdict.TOO_SOON
            assert wait > 0
    for key, times in granted.items():
        limit = math.ceil(rates[key])
        for first, last in zip(times, times[limit:], strict=False):
            assert last - first >= 1_000_000 * (1 + 3 * margin / 4) - 1, (key, limit, times)
        assert max_in_any_window([t / 1e6 for t in times]) <= limit


@pytest.mark.parametrize("late", [0.0, 0.0075, 0.0076, 0.02, 0.5])
def test_the_bound_is_tight_for_a_caller_late_by_up_to_the_tolerance(
    redis_client: redis.Redis, clock: FakeClock, late: float
) -> None:
    """The adversary of the proof: one grant arrives ``late`` after its slot, every other one exactly on
    it. Late by at most tau (7.5 ms at 3%) the schedule is kept and 21 grants span exactly 20*T - late;
    any later and the schedule starts afresh. Either way the span stays >= 1 + 3m/4."""
    pacer = fake_pacer(redis_client, clock, global_cps=20.0, margin=0.03)
    times: list[int] = []
    for n in range(60):
        verdict, wait = pacer.try_acquire(pacer.request(f"c{n}", "pstn", "a"))
        if verdict is Verdict.TOO_SOON:
            clock.advance(wait + (late if n == 5 else 0.0))
            assert pacer.try_acquire(pacer.request(f"c{n}", "pstn", "a"))[0] is Verdict.GRANTED
        times.append(clock.now_us)
    spans = [last - first for first, last in zip(times, times[20:], strict=False)]
    assert min(spans) >= 1_022_500
    expected = 20 * 51_500 - round(late * 1e6) if late <= 0.0075 else 20 * 51_500
    assert min(spans) == expected
    assert max_in_any_window([t / 1e6 for t in times]) == 20


def test_the_window_check_catches_a_plain_token_bucket() -> None:
    """The measurement can fail: a classic bucket (capacity = rate, refilled continuously) lets through
    twice its rate in a window that straddles the refill, and ``max_in_any_window`` says so."""
    rate, tokens, last, times = 10.0, 10.0, 0.0, []
    t = 0.0
    while t < 3.0:
        tokens = min(rate, tokens + (t - last) * rate)
        last = t
        if tokens >= 1:
            tokens -= 1
            times.append(t)
        t = round(t + 0.001, 6) if t < 0.99 or t > 1.0 else round(t + 0.0001, 6)
    assert max_in_any_window([t for t in times if t >= 0.9]) > rate


@pytest.mark.parametrize("cps", [1.0, 20.0, 100.0])
def test_a_full_queue_gets_the_limit_less_the_margin_even_when_waiters_wake_late(
    redis_client: redis.Redis, clock: FakeClock, cps: float
) -> None:
    clock.lateness = 0.9 * 0.03 / 4  # up to the tolerance: lateness must not add up from grant to grant
    pacer = fake_pacer(redis_client, clock, global_cps=cps, margin=0.03)
    end = START_US + 20_000_000
    times: list[float] = []
    n = 0
    while clock.now_us < end:
        pacer.acquire(pacer.request(f"c{n}", "pstn", "a", cps), timeout=30)
        times.append(clock.now_us / 1e6)
        n += 1
    assert max_in_any_window(times) <= cps
    assert achieved_rate(times) >= cps / 1.03 * 0.999
    assert achieved_rate(times) >= 0.95 * cps


def test_an_originate_held_up_past_the_tolerance_takes_a_fresh_token(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    pacer = fake_pacer(
        redis_client, clock, global_cps=20.0, margin=0.03, gateways={"pstn": GatewayLimits(max_concurrent=5)}
    )
    permit = pacer.acquire(pacer.request("c1", "pstn", "a"))
    assert permit.lease_keys == (calls_key("gateway", "pstn"),)
    clock.advance(0.020)  # within the allowance (22.5 ms at 3%): the grant still stands
    assert pacer.fresh(permit) is permit
    clock.advance(0.005)
    tat = redis_client.get(GLOBAL_CPS)
    renewed = pacer.fresh(permit)
    assert redis_client.get(GLOBAL_CPS) != tat  # another token was taken
    assert renewed.lease_keys == permit.lease_keys  # the concurrency lease is the one held already
    assert renewed.originate_by == pytest.approx(clock.monotonic() + 0.0225)


@pytest.mark.parametrize("refresh", [False, True])
def test_without_fresh_tokens_one_late_originate_breaks_the_window(
    redis_client: redis.Redis, clock: FakeClock, refresh: bool
) -> None:
    """At 20 CPS the grants are 51.5 ms apart; the first originate leaves 40 ms after its grant (a starved
    worker), the others on time. Sent on its old grant it lands 21 originates in one second; a fresh token
    puts it back in the schedule."""
    pacer = fake_pacer(redis_client, clock, global_cps=20.0, margin=0.03)
    first = pacer.acquire(pacer.request("c0", "pstn", "a"))
    clock.advance(0.040)
    if refresh:
        pacer.fresh(first)
    sent = [clock.monotonic()]
    for n in range(1, 30):
        pacer.acquire(pacer.request(f"c{n}", "pstn", "a"))
        sent.append(clock.monotonic())
    assert (max_in_any_window(sent) > 20) is not refresh


@pytest.mark.parametrize("pushed", [False, True])
def test_an_originate_the_switch_acknowledged_late_pushes_the_next_grants_back(
    redis_client: redis.Redis, clock: FakeClock, pushed: bool
) -> None:
    """At 20 CPS the first originate leaves at once but the switch reads it 40 ms after its grant (the
    acknowledgement says so), the others on time. Unless the limit is pushed back by the 17.5 ms over the
    allowance, 21 originates reach the switch within one second."""
    pacer = fake_pacer(redis_client, clock, global_cps=20.0, margin=0.03)
    first = pacer.acquire(pacer.request("c0", "pstn", "a"))
    clock.advance(0.040)
    received = [clock.monotonic()]
    if pushed:
        assert pacer.delivered(first) == pytest.approx(0.0175, abs=1e-6)
    for n in range(1, 30):
        permit = pacer.acquire(pacer.request(f"c{n}", "pstn", "a"))
        received.append(clock.monotonic())
        assert pacer.delivered(permit) == 0.0  # acknowledged at once: nothing pushed
    assert (max_in_any_window(received) > 20) is not pushed


def test_a_push_back_moves_only_the_limits_the_permit_drew_on(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = fake_pacer(redis_client, clock, global_cps=20.0, gateways={"pstn": GatewayLimits(cps=5.0)})
    permit = pacer.acquire(pacer.request("c0", "pstn", "a", campaign_cps=2.0))
    drawn = [GLOBAL_CPS, cps_key("gateway", "pstn"), cps_key("campaign", "a")]
    other = cps_key("gateway", "other")
    redis_client.set(other, str(START_US))
    before = {key: int(redis_client.get(key) or 0) for key in [*drawn, other]}
    clock.advance(0.0225 + 0.010)
    assert pacer.delivered(permit) == pytest.approx(0.010, abs=1e-6)
    moved = {key: int(redis_client.get(key) or 0) - before[key] for key in before}
    assert moved == {GLOBAL_CPS: 10_000, drawn[1]: 10_000, drawn[2]: 10_000, other: 0}


# ---------------------------------------------------------------------- all or nothing


def test_a_refusal_by_one_limit_takes_nothing_from_the_others(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = fake_pacer(redis_client, clock, global_cps=10.0, gateways={"pstn": GatewayLimits(max_concurrent=1)})
    assert pacer.try_acquire(pacer.request("a1", "pstn", "a", 1.0))[0] is Verdict.GRANTED
    tat = redis_client.get(GLOBAL_CPS)
    clock.advance(0.2)
    verdict, wait = pacer.try_acquire(pacer.request("a2", "pstn2", "a", 1.0))  # campaign a: 1 per 1.03 s
    assert verdict is Verdict.TOO_SOON
    assert wait == pytest.approx(1.03 - 0.2, abs=1e-6)
    assert redis_client.get(GLOBAL_CPS) == tat
    verdict, _ = pacer.try_acquire(pacer.request("b1", "pstn", "b"))  # gateway pstn full (a1 holds it)
    assert verdict is Verdict.CAP_FULL
    assert redis_client.get(GLOBAL_CPS) == tat
    assert pacer.try_acquire(pacer.request("b2", "pstn2", "b"))[0] is Verdict.GRANTED  # global token still there


def test_with_no_limits_nothing_is_asked_of_redis(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = fake_pacer(redis_client, clock)
    permit = pacer.acquire(pacer.request("x", "pstn", "a"))
    assert permit == Permit("x", ())
    assert redis_client.keys("dialer:pacing:*") == []


# ---------------------------------------------------------------------- concurrency leases


def test_a_concurrency_cap_holds_and_frees_on_release(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = fake_pacer(redis_client, clock, gateways={"pstn": GatewayLimits(max_concurrent=3)})
    permits = [pacer.acquire(pacer.request(f"c{n}", "pstn", "a", campaign_max_concurrent=10)) for n in range(3)]
    assert sorted(pacer.holders(calls_key("gateway", "pstn"))) == ["c0", "c1", "c2"]
    assert pacer.try_acquire(pacer.request("c3", "pstn", "a"))[0] is Verdict.CAP_FULL
    assert pacer.try_acquire(pacer.request("c0", "pstn", "a"))[0] is Verdict.GRANTED  # a holder is not counted twice
    pacer.release(permits[1])
    assert pacer.holders(calls_key("campaign", "a")) == ["c0", "c2"]
    assert pacer.try_acquire(pacer.request("c3", "pstn", "a"))[0] is Verdict.GRANTED


def test_leases_of_a_dead_worker_expire_and_renewed_ones_do_not(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = fake_pacer(redis_client, clock, gateways={"pstn": GatewayLimits(max_concurrent=2)}, lease_seconds=3.0)
    alive = pacer.acquire(pacer.request("alive", "pstn", "a"))
    pacer.acquire(pacer.request("dead", "pstn", "a"))
    for _ in range(4):  # the live worker's lease loop renews every third of the lease; the dead one does not
        clock.advance(1.0)
        pacer.renew([alive])
    assert pacer.holders(calls_key("gateway", "pstn")) == ["alive"]
    assert pacer.try_acquire(pacer.request("new", "pstn", "a"))[0] is Verdict.GRANTED
    assert pacer.try_acquire(pacer.request("newer", "pstn", "a"))[0] is Verdict.CAP_FULL
    pacer.release(alive)
    pacer.renew([alive])  # a renewal racing the release does not bring the lease back
    assert pacer.holders(calls_key("gateway", "pstn")) == ["new"]


# ---------------------------------------------------------------------- bounded waits


def test_a_wait_longer_than_the_timeout_gives_up_at_once_and_takes_nothing(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    pacer = fake_pacer(redis_client, clock, global_cps=1.0)
    pacer.acquire(pacer.request("first", "pstn", "a"))
    before, tat = clock.now_us, redis_client.get(GLOBAL_CPS)
    with pytest.raises(PacingTimeout, match=r"no pacing token within 0\.5 s"):
        pacer.acquire(pacer.request("second", "pstn", "a"), timeout=0.5)
    assert clock.now_us == before  # it knew the token was 1 s away: no pointless sleep
    assert redis_client.get(GLOBAL_CPS) == tat
    permit = pacer.acquire(pacer.request("second", "pstn", "a"), timeout=2)  # waits exactly until allowed
    assert permit.call_id == "second"
    assert clock.now_us - before == 1_030_000


def test_a_full_cap_is_waited_for_until_the_timeout(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = fake_pacer(redis_client, clock, gateways={"pstn": GatewayLimits(max_concurrent=1)})
    pacer.acquire(pacer.request("holder", "pstn", "a"))
    start = clock.now_us
    with pytest.raises(PacingTimeout, match="concurrency lease"):
        pacer.acquire(pacer.request("waiter", "pstn", "a"), timeout=0.5)
    assert 0.5 <= (clock.now_us - start) / 1e6 < 0.5 + 0.06
    assert pacer.holders(calls_key("gateway", "pstn")) == ["holder"]


def test_waiters_in_one_process_queue_behind_one_turnstile(redis_client: redis.Redis) -> None:
    """Real clock, real gevent: 40 calls wait for a 50 CPS limit; only the head of the line asks Redis,
    so the scripts run about once per grant, not once per waiter per token."""
    pacer = Pacer(redis_client, PacingConfig(global_cps=50.0))
    runs = 0
    try_acquire = pacer.try_acquire

    def counted(request):  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1
        return try_acquire(request)

    pacer.try_acquire = counted  # type: ignore[method-assign]
    jobs = [gevent.spawn(pacer.acquire, pacer.request(f"c{n}", "pstn", "a"), 5.0) for n in range(40)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    assert all(job.successful() for job in jobs)
    assert runs <= 2 * 40


# ---------------------------------------------------------------------- gateway health


def test_a_gateway_that_keeps_failing_is_backed_off_and_skipped_while_another_remains(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    pacer = fake_pacer(redis_client, clock, failure_threshold=2, failure_window=10.0, backoff_seconds=30.0)
    assert pacer.record_failure("pstn", "c1") is False
    clock.advance(11)  # outside the window: forgotten
    assert pacer.record_failure("pstn", "c2") is False
    assert pacer.next_gateway(["pstn", "pstn2"]) == "pstn"
    assert pacer.record_failure("pstn", "c3") is True
    assert pacer.backed_off(["pstn", "pstn2"]) == {"pstn"}
    assert pacer.next_gateway(["pstn", "pstn2"]) == "pstn2"
    assert pacer.next_gateway(["pstn", "pstn2"], tried=["pstn2"]) == "pstn"  # only backed-off ones left: try
    assert pacer.next_gateway(["pstn"]) == "pstn"
    assert pacer.next_gateway(["pstn", "pstn2"], tried=["pstn", "pstn2"]) is None


def test_a_call_with_one_gateway_left_asks_redis_nothing_about_gateway_health(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    counted = counting_client(redis_client)
    pacer = fake_pacer(counted, clock, failure_threshold=1)
    assert pacer.record_failure("pstn", "c1") is True
    CountingConnection.sent = 0
    assert pacer.next_gateway(["pstn"]) == "pstn"  # backed off, but the only one: dialled all the same
    assert pacer.next_gateway(["pstn", "pstn2"], tried=["pstn2"]) == "pstn"
    assert pacer.next_gateway(["pstn"], tried=["pstn"]) is None
    assert CountingConnection.sent == 0
    assert pacer.next_gateway(["pstn", "pstn2"]) == "pstn2"  # a choice to make: one round trip
    assert CountingConnection.sent == 1


def test_back_off_ends_after_the_cool_down(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = fake_pacer(redis_client, clock, failure_threshold=1, backoff_seconds=0.2)
    assert pacer.record_failure("pstn", "c1") is True
    assert pacer.backed_off(["pstn"]) == {"pstn"}
    gevent.sleep(0.3)  # the cool-down is a Redis expiry, in real time
    assert pacer.backed_off(["pstn"]) == set()


def test_seeded_random_arrivals_from_many_callers_hold_every_level(redis_client: redis.Redis, clock: FakeClock) -> None:
    """A long mixed run (10,000 attempts) as a regression guard next to the hypothesis property."""
    rng = random.Random(5)
    pacer = fake_pacer(redis_client, clock, global_cps=30.0, gateways={"pstn": GatewayLimits(cps=12.0)})
    grants: dict[str, list[float]] = {"global": [], "pstn": [], "a": []}
    for n in range(10_000):
        clock.now_us += rng.choice([0, 0, 0, 1, 10, 500, 5_000, 40_000])
        gateway, campaign = rng.choice(["pstn", "pstn2"]), rng.choice(["a", "b"])
        request = pacer.request(f"c{n}", gateway, campaign, 5.0 if campaign == "a" else None)
        if pacer.try_acquire(request)[0] is Verdict.GRANTED:
            grants["global"].append(clock.now_us / 1e6)
            if gateway == "pstn":
                grants["pstn"].append(clock.now_us / 1e6)
            if campaign == "a":
                grants["a"].append(clock.now_us / 1e6)
    assert 20 <= max_in_any_window(grants["global"]) <= 30
    assert 10 <= max_in_any_window(grants["pstn"]) <= 12
    assert max_in_any_window(grants["a"]) == 5
