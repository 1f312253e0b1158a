"""How many calls a campaign may start now, and in which mode: the pure rule each dispatcher pass applies.

Inputs, read from Redis in one step (``CampaignRedis.agent_demand``): ``free`` agents of the campaign's
group (ready, registered, out of wrap-up), ``dialing`` calls of the campaign that still need an agent
(queued, waiting for one, ringing, or answered and waiting), and the campaign's finished calls so far.

- progressive and preview: one call per free agent that no dialing call will take: ``free - dialing``.
  Each call reserves its agent before the customer is dialled, so nobody who answers waits for nobody.
- predictive: dial ahead of the free agents at ``ratio = 1 / answer rate`` (the share of calls a person
  answers, learnt from the campaign's finished calls, starting from a prior; at most ``max_ratio``).
  The calls beyond the free agents (``excess``) are the only ones that can be abandoned, and the
  campaign may abandon ``budget = max_abandon_rate * answered_by_a_person - abandoned`` more calls
  before its abandon rate passes the cap. So the excess is held to the budget: even if every excess call
  were answered and abandoned, the campaign's rate would stay within the cap. With less than one
  abandon to spare (always at the start) the campaign dials progressively until it has earned some.

An answered call leaves ``dialing`` as it takes an agent, so answers do not grow the excess; only new
calls and agents leaving (pauses, other campaigns of the group) can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dialer.callmodel import DialMode

PRIOR_ANSWER_RATE = 0.5  # before a campaign has results: a person answers every other call
PRIOR_CALLS = 10  # ... weighted as this many calls


@dataclass(frozen=True)
class CallResults:
    finished: int  # calls ended, any outcome
    human: int  # answered by a person: completed (bridged) + abandoned
    abandoned: int


@dataclass(frozen=True)
class Plan:
    mode: DialMode  # the mode the new calls are placed in
    calls: int  # how many to start now
    ratio: float  # calls per free agent aimed at (1 unless predictive)


def answer_rate(results: CallResults) -> float:
    return (results.human + PRIOR_ANSWER_RATE * PRIOR_CALLS) / (results.finished + PRIOR_CALLS)


def abandon_budget(results: CallResults, max_abandon_rate: float) -> float:
    return max_abandon_rate * results.human - results.abandoned


def plan(
    mode: DialMode,
    free: int,
    dialing: int,
    results: CallResults,
    max_abandon_rate: float = 0.03,
    max_ratio: float = 3.0,
) -> Plan:
    if mode is DialMode.PREDICTIVE:
        budget = abandon_budget(results, max_abandon_rate)
        if budget >= 1 and free > 0:
            ratio = min(max_ratio, max(1.0, 1.0 / answer_rate(results)))
            target = min(math.floor(free * ratio), free + math.floor(budget))
            return Plan(DialMode.PREDICTIVE, max(0, target - dialing), ratio)
        mode = DialMode.PROGRESSIVE  # the cap is near: nobody may be abandoned now
    return Plan(mode, max(0, free - dialing), 1.0)
