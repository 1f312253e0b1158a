"""Fixtures: a fresh simulator on port 0 per test, with callees that answer in milliseconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dialer.sim import Agent, Callee, Scenario, Simulator

from .client import Client

FAST = Callee(ring_ms=5, early_media_ms=5, answer_ms=20)
FAST_AGENT = Agent(id="1001", answer_ms=20)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(scenario: Scenario | None = None, **kwargs: object) -> Simulator:
        sim = Simulator(scenario=scenario or Scenario(default=FAST, agents=[FAST_AGENT]), **kwargs).start()  # type: ignore[arg-type]
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim()


@pytest.fixture
def connect(sim: Simulator) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def open_client(events: str | None = "json ALL", port: int | None = None) -> Client:
        client = Client(port or sim.port)
        clients.append(client)
        assert client.auth().reply_text == "+OK accepted"
        if events:
            assert client.command(f"event {events}").startswith("+OK event listener enabled")
        return client

    yield open_client
    for client in clients:
        client.close()
