"""Prometheus metrics: what a worker process serves on ``/metrics`` (``dialer worker --metrics-port N``), and
what the API serves on its own ``/metrics`` (with the bearer token, like every API route but ``/health``).

Per worker process (label ``node`` is the FreeSWITCH node's name from ``DIALER_FREESWITCH``)::

    dialer_calls{state}                          gauge      calls this worker runs now, by call state
    dialer_calls_concurrent                      gauge      calls this worker runs now
    dialer_call_outcomes_total{outcome}          counter    calls ended, by outcome
    dialer_originates_total{leg,gateway}         counter    originates sent (leg: customer or agent)
    dialer_answer_to_bridge_seconds              histogram  customer answered -> bridged to an agent
    dialer_pacing_wait_seconds{result}           histogram  time a call waited for its pacing (granted/timeout)
    dialer_esl_connected{node}                   gauge      1 while the ESL link is up
    dialer_esl_events_total{node}                counter    events received
    dialer_esl_unclaimed_events_total{node}      counter    events no call was waiting for
    dialer_esl_reconnects_total{node}            counter    links re-established after a loss
    dialer_esl_command_seconds{node}             histogram  api/bgapi command -> reply
    process_*                                    the process's CPU, memory and file descriptors

System-wide, read from Redis at scrape time (every worker and the API show the same values; aggregate
with ``max``, not ``sum``)::

    dialer_agents{state}                         gauge      agents by state (offline, available, on-call ...)
    dialer_calls_in_flight                       gauge      calls in progress in all workers (dialer:inflight)
    dialer_queued_jobs{queue}                    gauge      call jobs waiting in RQ

What exists as state already (the runtime's calls, each link's ``SwitchStats``) is read when scraped; the
counters that have no state to read are incremented by one-line hooks in the call path
(:func:`call_ended`, :func:`originated`, :func:`paced`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from dialer.callmodel import CallState, Outcome
from dialer.store import AGENTS, INFLIGHT, AgentState, agent_key

if TYPE_CHECKING:
    from dialer.runtime import Runtime

log = logging.getLogger(__name__)

#: The worker process's registry (the hooks below write to it wherever they run).
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

# Answer -> bridge is the customer on hold: regulators count calls not connected within 2 s as abandoned.
_BRIDGE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_PACING_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

CALL_OUTCOMES = Counter("dialer_call_outcomes", "Calls ended, by outcome", ["outcome"], registry=REGISTRY)
ORIGINATES = Counter("dialer_originates", "Originates sent to the switch", ["leg", "gateway"], registry=REGISTRY)
ANSWER_TO_BRIDGE = Histogram(
    "dialer_answer_to_bridge_seconds",
    "Customer answered -> bridged to an agent",
    buckets=_BRIDGE_BUCKETS,
    registry=REGISTRY,
)
PACING_WAIT = Histogram(
    "dialer_pacing_wait_seconds",
    "Time a call waited for its pacing tokens and leases",
    ["result"],
    buckets=_PACING_BUCKETS,
    registry=REGISTRY,
)
for _outcome in Outcome:  # every outcome from the start, so rate() sees the first call of each
    CALL_OUTCOMES.labels(_outcome.value)


# ------------------------------------------------------------------ hooks in the call path


def call_ended(record: Mapping[str, str]) -> None:
    """A call's final record was written (``CallSession._write_final``)."""
    outcome = record.get("outcome")
    if outcome:
        CALL_OUTCOMES.labels(outcome).inc()
    answered, bridged = record.get("answered_at"), record.get("bridged_at")
    if answered and bridged:
        ANSWER_TO_BRIDGE.observe(max(0.0, float(bridged) - float(answered)))


def originated(leg: str, gateway: str = "") -> None:
    ORIGINATES.labels(leg, gateway).inc()


def paced(seconds: float, granted: bool) -> None:
    PACING_WAIT.labels("granted" if granted else "timeout").observe(seconds)


# ------------------------------------------------------------------ collectors read at scrape time


class RuntimeCollector(Collector):
    """The calls a worker's runtime holds and the state of its ESL links."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        sessions = list(self.runtime.active.values())
        by_state = GaugeMetricFamily("dialer_calls", "Calls this worker runs now, by call state", labels=["state"])
        for state in CallState:
            by_state.add_metric([state.value], sum(1 for s in sessions if s.state is state))
        yield by_state
        yield GaugeMetricFamily("dialer_calls_concurrent", "Calls this worker runs now", value=len(sessions))

        connected = GaugeMetricFamily("dialer_esl_connected", "1 while the ESL link is up", labels=["node"])
        events = CounterMetricFamily("dialer_esl_events", "ESL events received", labels=["node"])
        unclaimed = CounterMetricFamily(
            "dialer_esl_unclaimed_events", "ESL events no call was waiting for", labels=["node"]
        )
        reconnects = CounterMetricFamily("dialer_esl_reconnects", "ESL links re-established", labels=["node"])
        latency = HistogramMetricFamily("dialer_esl_command_seconds", "ESL api/bgapi -> reply", labels=["node"])
        for switch in self.runtime.switches:
            stats, node = switch.stats, [switch.name]
            connected.add_metric(node, 1 if switch.connected else 0)
            events.add_metric(node, stats.events)
            unclaimed.add_metric(node, stats.unclaimed)
            reconnects.add_metric(node, stats.reconnects)
            buckets = _cumulative(stats.command_bounds, stats.command_buckets)
            latency.add_metric(node, buckets, stats.command_total_seconds)
        yield from (connected, events, unclaimed, reconnects, latency)


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts -> Prometheus' cumulative ``le`` buckets, ending with +Inf."""
    buckets, total = [], 0
    for bound, count in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        total += count
        buckets.append((bound, float(total)))
    return buckets


class RedisCollector(Collector):
    """System-wide gauges from Redis: agents by state, calls in flight, queued call jobs."""

    def __init__(self, client: redis.Redis[bytes], queues: Sequence[str] = ("calls",)) -> None:
        self.client = client
        self.queues = tuple(queues)

    def collect(self) -> Iterator[Metric]:
        try:
            agents, in_flight, queued = self._read()
        except redis.RedisError as exc:  # a scrape must not fail as a whole: the process series still count
            log.warning("metrics: redis unavailable", extra={"error": str(exc)})
            return
        by_state = GaugeMetricFamily("dialer_agents", "Agents by state", labels=["state"])
        for state in AgentState:
            by_state.add_metric([state.value], agents.get(state.value, 0))
        yield by_state
        yield GaugeMetricFamily("dialer_calls_in_flight", "Calls in progress in all workers", value=in_flight)
        jobs = GaugeMetricFamily("dialer_queued_jobs", "Call jobs waiting in RQ", labels=["queue"])
        for queue, length in zip(self.queues, queued, strict=True):
            jobs.add_metric([queue], length)
        yield jobs

    def _read(self) -> tuple[dict[str, int], int, list[int]]:
        ids = [member.decode() for member in self.client.smembers(AGENTS)]
        pipe = self.client.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hget(agent_key(agent_id), "state")
        pipe.zcard(INFLIGHT)
        for queue in self.queues:
            pipe.llen(f"rq:queue:{queue}")
        replies: list[Any] = pipe.execute()
        states: dict[str, int] = {}
        for raw in replies[: len(ids)]:
            state = raw.decode() if raw else AgentState.OFFLINE.value
            states[state] = states.get(state, 0) + 1
        return states, int(replies[len(ids)]), [int(n) for n in replies[len(ids) + 1 :]]


def api_registry(client: redis.Redis[bytes]) -> CollectorRegistry:
    """What the API's ``/metrics`` shows: the system-wide gauges and the API process's own."""
    registry = CollectorRegistry()
    registry.register(RedisCollector(client))
    ProcessCollector(registry=registry)
    return registry


def serve_worker(runtime: Runtime, host: str, port: int) -> Any:
    """Serve the worker's ``/metrics`` on ``host:port`` in a greenlet; returns the started gevent server
    (``stop()`` it on shutdown). ``OSError`` if the port is taken."""
    from gevent.pywsgi import WSGIServer
    from prometheus_client import make_wsgi_app

    REGISTRY.register(RuntimeCollector(runtime))
    REGISTRY.register(RedisCollector(runtime.store.redis))
    server = WSGIServer((host, port), make_wsgi_app(REGISTRY), log=None)
    server.start()
    return server
