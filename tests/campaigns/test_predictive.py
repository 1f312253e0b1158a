"""The dial-mode rule (pure): how many calls a campaign starts, and when predictive falls back."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from dialer.callmodel import DialMode
from dialer.campaigns.predictive import CallResults, abandon_budget, answer_rate, plan

counts = st.integers(min_value=0, max_value=500)


@st.composite
def results(draw: st.DrawFn) -> CallResults:
    finished = draw(st.integers(min_value=0, max_value=5000))
    human = draw(st.integers(min_value=0, max_value=finished))
    return CallResults(finished, human, draw(st.integers(min_value=0, max_value=human)))


@given(st.sampled_from([DialMode.PROGRESSIVE, DialMode.PREVIEW]), counts, counts, results())
def test_agent_first_modes_start_one_call_per_free_agent_not_yet_spoken_for(
    mode: DialMode, free: int, dialing: int, done: CallResults
) -> None:
    decided = plan(mode, free, dialing, done)
    assert decided.mode is mode
    assert decided.calls == max(0, free - dialing)
    assert decided.ratio == 1.0


@given(counts, counts, results(), st.floats(0, 0.5), st.floats(1, 10))
def test_predictive_never_risks_more_abandons_than_the_cap_allows(
    free: int, dialing: int, done: CallResults, cap: float, max_ratio: float
) -> None:
    decided = plan(DialMode.PREDICTIVE, free, dialing, done, cap, max_ratio)
    budget = abandon_budget(done, cap)
    if decided.mode is DialMode.PREDICTIVE:
        assert 1.0 <= decided.ratio <= max_ratio
        excess = dialing + decided.calls - free  # calls that would find no agent if all answered at once
        # every one of them answered and abandoned still keeps the campaign within its cap
        assert decided.calls == 0 or excess <= math.floor(budget)
        assert done.abandoned + max(0, excess) <= cap * done.human or decided.calls == 0
        assert dialing + decided.calls <= math.floor(free * decided.ratio) or decided.calls == 0
    else:  # near the cap: agents first, no abandon possible
        assert decided.mode is DialMode.PROGRESSIVE
        assert budget < 1 or free == 0
        assert decided.calls == max(0, free - dialing)


def test_a_new_campaign_dials_progressively_until_it_has_abandons_to_spare() -> None:
    assert plan(DialMode.PREDICTIVE, 10, 0, CallResults(0, 0, 0)).mode is DialMode.PROGRESSIVE
    # 3% of 30 people is less than one abandon: still progressive
    assert plan(DialMode.PREDICTIVE, 10, 0, CallResults(100, 30, 0)).mode is DialMode.PROGRESSIVE
    earned = plan(DialMode.PREDICTIVE, 10, 0, CallResults(300, 100, 0))
    assert earned.mode is DialMode.PREDICTIVE
    assert earned.calls == 13  # 10 agents + 3 abandons to spare (the ratio, ~2.9, would allow 29)


def test_the_ratio_follows_the_answer_rate_and_its_cap() -> None:
    assert math.isclose(answer_rate(CallResults(0, 0, 0)), 0.5)  # the prior
    assert math.isclose(answer_rate(CallResults(990, 245, 0)), 0.25)
    low = plan(DialMode.PREDICTIVE, 4, 0, CallResults(990, 245, 0), max_abandon_rate=0.5, max_ratio=10)
    assert math.isclose(low.ratio, 4.0)
    assert low.calls == 16
    capped = plan(DialMode.PREDICTIVE, 4, 0, CallResults(990, 245, 0), max_abandon_rate=0.5, max_ratio=2)
    assert capped.ratio == 2
    assert capped.calls == 8


def test_abandons_spend_the_budget_and_bring_back_progressive() -> None:
    assert plan(DialMode.PREDICTIVE, 5, 0, CallResults(300, 100, 2)).mode is DialMode.PREDICTIVE
    assert plan(DialMode.PREDICTIVE, 5, 0, CallResults(300, 100, 3)).mode is DialMode.PROGRESSIVE
