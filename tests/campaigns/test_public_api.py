"""``dialer.campaigns`` exports exactly its public API, and the error tree is the one its docstring draws."""

from __future__ import annotations

import dialer.campaigns as campaigns
from dialer.campaigns import errors


def test_all_is_the_public_api() -> None:
    assert set(campaigns.__all__) == {
        "CampaignConfig",
        "CampaignError",
        "CampaignExists",
        "CampaignNotFound",
        "CampaignState",
        "CampaignStatus",
        "Campaigns",
        "ContactIn",
        "ContactState",
        "IntakeResult",
        "InvalidTransition",
        "Rejection",
    }
    assert all(hasattr(campaigns, name) for name in campaigns.__all__)


def test_every_error_is_a_campaign_error_named_in_the_docstring() -> None:
    doc = errors.__doc__ or ""
    for error in (errors.CampaignNotFound, errors.CampaignExists, errors.InvalidTransition):
        assert issubclass(error, errors.CampaignError)
        assert error.__name__ in doc
        assert 400 <= error.status < 500
