"""The call state machine and outcome classification: pure, table-driven and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.callmodel import (
    EVENT_TRIGGERS,
    TRANSITIONS,
    CallState,
    Outcome,
    Trigger,
    classify,
    next_state,
)

ORDER = list(CallState)


def test_every_state_has_a_row_and_ended_is_final() -> None:
    assert set(TRANSITIONS) == set(CallState)
    assert TRANSITIONS[CallState.ENDED] == {}


def test_every_live_state_can_end() -> None:
    for state in CallState:
        if state is not CallState.ENDED:
            assert next_state(state, Trigger.HANGUP) is CallState.ENDED


@given(st.sampled_from(list(CallState)), st.sampled_from(list(Trigger)))
def test_transitions_never_go_backwards(state: CallState, trigger: Trigger) -> None:
    target = next_state(state, trigger)
    if target is not None:
        assert ORDER.index(target) >= ORDER.index(state)


@given(st.lists(st.sampled_from(list(Trigger)), max_size=30))
def test_any_event_sequence_is_absorbed_without_error(triggers: list[Trigger]) -> None:
    state = CallState.QUEUED
    for trigger in triggers:
        state = next_state(state, trigger) or state  # a misfit keeps the state (and is recorded by the caller)
    assert state in CallState


def test_the_recorded_answered_call_walks_the_whole_path() -> None:
    names = ["CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER"]
    state = next_state(CallState.QUEUED, Trigger.ORIGINATE_SENT)
    assert state is CallState.ORIGINATING
    seen = []
    for name in names:
        state = next_state(state, EVENT_TRIGGERS[name])
        assert state is not None
        seen.append(state)
    assert seen == [CallState.TRYING, CallState.RINGING, CallState.EARLY_MEDIA, CallState.ANSWERED]
    assert next_state(CallState.ANSWERED, Trigger.PROGRESS) is None  # a late 180 does not fit


@pytest.mark.parametrize(
    ("cause", "sip", "expected"),
    [
        ("USER_BUSY", 486, Outcome.BUSY),
        ("USER_BUSY", 600, Outcome.BUSY),
        ("NO_ANSWER", None, Outcome.NO_ANSWER),
        ("NO_USER_RESPONSE", 480, Outcome.NO_ANSWER),
        ("CALL_REJECTED", 603, Outcome.REJECTED),
        ("UNALLOCATED_NUMBER", 404, Outcome.INVALID_NUMBER),
        ("INVALID_NUMBER_FORMAT", 484, Outcome.INVALID_NUMBER),
        ("NORMAL_TEMPORARY_FAILURE", 503, Outcome.FAILED),
        ("INVALID_GATEWAY", None, Outcome.FAILED),
        ("ORIGINATOR_CANCEL", 487, Outcome.CANCELED),
        ("NORMAL_CLEARING", 486, Outcome.BUSY),  # a generic cause: the SIP status decides
        ("UNKNOWN", None, Outcome.FAILED),
    ],
)
def test_unanswered_outcomes_follow_freeswitch_causes(cause: str, sip: int | None, expected: Outcome) -> None:
    assert classify(cause, sip) is expected


def test_what_happened_after_the_answer_decides_first() -> None:
    assert classify("NORMAL_CLEARING", 200, answered=True, bridged=True) is Outcome.COMPLETED
    assert classify("NORMAL_CLEARING", 200, answered=True) is Outcome.ABANDONED
    assert classify("NORMAL_CLEARING", 200, answered=True, machine=True) is Outcome.MACHINE
    assert classify("NORMAL_CLEARING", None, canceled=True) is Outcome.CANCELED
