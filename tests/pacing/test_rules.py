"""Pure rules: which failures are the network's, and the pacing settings' validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dialer.pacing import PacingConfig, Rate, config_from_settings, is_network_failure
from settings import Settings


@pytest.mark.parametrize(
    ("cause", "sip_status"),
    [
        ("NORMAL_TEMPORARY_FAILURE", 503),
        ("DESTINATION_OUT_OF_ORDER", None),
        ("GATEWAY_DOWN", None),
        ("RECOVERY_ON_TIMER_EXPIRE", 408),
        ("INVALID_GATEWAY", None),
        ("UNKNOWN", 502),
    ],
)
def test_network_failures_are_worth_another_gateway(cause: str, sip_status: int | None) -> None:
    assert is_network_failure(cause, sip_status)


@pytest.mark.parametrize(
    ("cause", "sip_status"),
    [("USER_BUSY", 486), ("NO_ANSWER", None), ("CALL_REJECTED", 603), ("UNALLOCATED_NUMBER", 404), (None, None)],
)
def test_the_customers_own_answers_are_not(cause: str | None, sip_status: int | None) -> None:
    assert not is_network_failure(cause, sip_status)


def test_a_rate_is_an_interval_with_the_margin_a_quarter_of_it_as_tolerance_the_rest_for_delivery() -> None:
    assert Rate.of("k", 20.0, 0.03) == Rate("k", 51_500, 7_500, 22_500)
    assert Rate.of("k", 3.0, 0.0) == Rate("k", 333_334, 0, 0)  # rounded up: never faster than the limit


def test_pacing_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_GLOBAL_CPS", "20")
    monkeypatch.setenv("DIALER_GATEWAY_LIMITS", '{"pstn": {"cps": 10, "max_concurrent": 100}, "pstn2": {"cps": 5}}')
    config = config_from_settings(Settings())
    assert config.global_cps == 20
    assert (config.gateways["pstn"].cps, config.gateways["pstn"].max_concurrent) == (10, 100)
    assert config.gateways["pstn2"].max_concurrent is None
    assert PacingConfig().global_cps is None  # no limits unless configured


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIALER_GLOBAL_CPS": "0"}, "global_cps\n  Input should be greater than 0"),
        ({"DIALER_GATEWAY_LIMITS": '{"pstn": {"cps": 10, "max_concurent": 5}}'}, "pstn.max_concurent\n  Extra"),
        ({"DIALER_GATEWAY_LIMITS": '{"pstn": {"max_concurrent": 0}}'}, "pstn.max_concurrent\n  Input should be"),
        ({"DIALER_GATEWAY_LIMITS": '{"my gw": {"cps": 1}}'}, "gateway name 'my gw' is not a valid gateway name"),
        ({"DIALER_PACING_MARGIN": "0.9"}, "pacing_margin\n  Input should be less than or equal to 0.5"),
        ({"DIALER_PACING_WAIT_TIMEOUT": "-1"}, "pacing_wait_timeout\n  Input should be greater than 0"),
        ({"DIALER_GATEWAY_FAILURE_THRESHOLD": "0"}, "gateway_failure_threshold\n  Input should be greater"),
    ],
)
def test_bad_pacing_settings_name_the_field(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert message in str(raised.value)
