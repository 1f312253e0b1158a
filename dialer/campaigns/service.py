"""The campaign operations, from Python: what the HTTP API and the CLI call.

campaigns = Campaigns.from_settings(get_settings())
campaigns.create({"id": "spring", "caller_id_number": "+12125550100", "gateway": "pstn"})
campaigns.add_contacts("spring", [{"contact_id": "c1", "number": "+12125551234"}])
campaigns.start("spring")
campaigns.status("spring").contacts_by_state
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any

import redis

from dialer.campaigns.errors import CampaignExists, CampaignNotFound, InvalidCampaign, InvalidTransition
from dialer.campaigns.intake import InvalidNumber, e164, read_rows
from dialer.campaigns.models import (
    CampaignConfig,
    CampaignState,
    CampaignStatus,
    ContactState,
    IntakeResult,
    Rejection,
)
from dialer.campaigns.outcomes import load_config
from dialer.campaigns.state import CampaignRedis, TransitionRefused
from settings import Settings

#: action -> (state it moves to, states it may start from)
TRANSITIONS: dict[str, tuple[CampaignState, tuple[CampaignState, ...]]] = {
    "start": (CampaignState.RUNNING, (CampaignState.DRAFT,)),
    "pause": (CampaignState.PAUSED, (CampaignState.RUNNING,)),
    "resume": (CampaignState.RUNNING, (CampaignState.PAUSED,)),
    "cancel": (CampaignState.CANCELED, (CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED)),
}
INTAKE_CHUNK = 1000
ANSWERED = ("completed", "abandoned", "machine")
HUMAN_ANSWERED = ("completed", "abandoned")


class Campaigns:
    def __init__(self, client: redis.Redis[bytes], region: str = "US", default_zone: str = "UTC") -> None:
        self.state = CampaignRedis(client)
        self.region = region
        self.default_zone = default_zone

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis[bytes] | None = None) -> Campaigns:
        connection = client or redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        return cls(connection, settings.default_region, settings.default_timezone)

    # ------------------------------------------------------------------ campaigns

    def create(self, config: CampaignConfig | Mapping[str, Any], owner: str | None = None) -> CampaignConfig:
        """Store a new campaign (state draft); CampaignExists if the id is taken. ``owner``: the API tenant
        whose campaign it is (see ``dialer.http_api``); ids are unique across tenants."""
        campaign = config if isinstance(config, CampaignConfig) else CampaignConfig.model_validate(dict(config))
        if campaign.webhook_url is not None and campaign.webhook_secret is None:  # stored configs have no secret
            raise InvalidCampaign("required with webhook_url: every webhook is signed with it", field="webhook_secret")
        stored = campaign.model_dump_json(exclude={"webhook_secret", "metadata"})
        fields = {
            "config": stored,
            "metadata": json.dumps(campaign.metadata, default=str),
            "created_at": f"{time.time():.6f}",
        }
        if campaign.webhook_secret is not None:
            fields["webhook_secret"] = campaign.webhook_secret.get_secret_value()
        if campaign.webhook_url is not None:
            fields["webhooks"] = "1"
        if owner is not None:
            fields["owner"] = owner
        if not self.state.create(campaign.id, fields, time.time()):
            raise CampaignExists(f"campaign {campaign.id!r} already exists", field="id")
        return campaign

    def get(self, campaign: str) -> CampaignConfig:
        """The campaign's configuration with its metadata (and secret, for the webhook sender)."""
        stored = self.state.campaign(campaign)
        config = load_config(self.state, campaign) if stored else None
        if config is None:
            raise CampaignNotFound(f"no campaign {campaign!r}")
        values = config.model_dump()
        values["metadata"] = json.loads(stored.get("metadata", "{}"))
        values["webhook_secret"] = stored.get("webhook_secret") or None
        return CampaignConfig.model_validate(values)

    def owner(self, campaign: str) -> str | None:
        """The tenant that created the campaign (None: created without one)."""
        return self.state.campaign_field(campaign, "owner")

    def list_campaigns(self, owner: str | None = None) -> list[tuple[str, str]]:
        """(id, state) of every campaign, or with ``owner`` only that tenant's."""
        listed = [
            (campaign, self.state.campaign_field(campaign, "state") or "") for campaign in self.state.campaign_ids()
        ]
        return listed if owner is None else [(c, state) for c, state in listed if self.owner(c) == owner]

    # ------------------------------------------------------------------ lifecycle

    def start(self, campaign: str) -> CampaignStatus:
        return self._transition(campaign, "start")

    def pause(self, campaign: str) -> CampaignStatus:
        return self._transition(campaign, "pause")

    def resume(self, campaign: str) -> CampaignStatus:
        return self._transition(campaign, "resume")

    def cancel(self, campaign: str) -> CampaignStatus:
        """Pending contacts become final now; queued calls are not dialled (their job sees the campaign
        canceled); calls in progress finish. The scheduler keeps the campaign until those settled."""
        self._transition(campaign, "cancel")
        while self.state.cancel_pending(campaign):
            pass
        return self.status(campaign)

    def _transition(self, campaign: str, action: str) -> CampaignStatus:
        target, allowed = TRANSITIONS[action]
        live = target in (CampaignState.RUNNING, CampaignState.PAUSED, CampaignState.CANCELED)
        try:
            self.state.transition(campaign, target.value, [state.value for state in allowed], live)
        except TransitionRefused as exc:
            if exc.state is None:
                raise CampaignNotFound(f"no campaign {campaign!r}") from exc
            raise InvalidTransition(f"cannot {action} a campaign that is {exc.state}") from exc
        return self.status(campaign)

    # ------------------------------------------------------------------ contacts

    def add_contacts(self, campaign: str, rows: Iterable[Mapping[str, Any]]) -> IntakeResult:
        """Add contacts in bulk, idempotent by contact id. Bad rows are rejected with their row number and
        reason; every good row is stored, in chunks, each chunk atomically.

        Each chunk is validated while the one before is written: the script runs in the Redis process,
        so its time is hidden behind the validation, which is most of intake's CPU."""
        config = load_config(self.state, campaign)
        if config is None:
            raise CampaignNotFound(f"no campaign {campaign!r}")
        zone = config.timezone or self.default_zone
        result = IntakeResult()
        seen: set[str] = set()
        source = iter(rows)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake") as writer:
            writing: Future[tuple[int, int]] | None = None
            first_row = 1
            while chunk := list(islice(source, INTAKE_CHUNK)):
                contacts, rejected = read_rows(chunk, self.region, zone, first_row)
                first_row += len(chunk)
                result.rejected += rejected
                unique = []
                for contact in contacts:  # a repeated id within the batch counts as a duplicate, like one stored
                    if contact.contact_id in seen:
                        result.duplicates += 1
                    else:
                        seen.add(contact.contact_id)
                        unique.append(contact)
                if writing is not None:
                    self._count_written(campaign, writing, result)
                writing = writer.submit(self.state.add_contacts, campaign, unique) if unique else None
            if writing is not None:
                self._count_written(campaign, writing, result)
        return result

    @staticmethod
    def _count_written(campaign: str, writing: Future[tuple[int, int]], result: IntakeResult) -> None:
        try:
            accepted, duplicates = writing.result()
        except TransitionRefused as exc:
            if exc.state is None:
                raise CampaignNotFound(f"no campaign {campaign!r}") from exc
            raise InvalidTransition(f"cannot add contacts to a campaign that is {exc.state}") from exc
        result.accepted += accepted
        result.duplicates += duplicates

    def contact(self, campaign: str, contact_id: str) -> dict[str, Any]:
        stored = self.state.contact(campaign, contact_id)
        if not stored:
            raise CampaignNotFound(f"no contact {contact_id!r} in campaign {campaign!r}", field="contact_id")
        shown: dict[str, Any] = dict(stored)
        shown["zones"] = stored.get("zones", "").split(",")
        shown["metadata"] = json.loads(stored.get("metadata", "{}"))
        return shown

    # ------------------------------------------------------------------ statistics

    def status(self, campaign: str) -> CampaignStatus:
        state = self.state.campaign_field(campaign, "state")
        if state is None:
            raise CampaignNotFound(f"no campaign {campaign!r}")
        stats, in_progress, _, recent = self.state.counts(campaign)
        by_prefix: dict[str, dict[str, int]] = {"state": {}, "outcome": {}, "call": {}}
        for name, value in stats.items():
            prefix, _, key = name.partition(":")
            if prefix in by_prefix and int(value):
                by_prefix[prefix][key] = int(value)
        for contact_state in ContactState:
            by_prefix["state"].setdefault(contact_state.value, 0)
        calls = by_prefix["call"]
        finished = sum(calls.values())
        answered = sum(calls.get(o, 0) for o in ANSWERED)
        human = sum(calls.get(o, 0) for o in HUMAN_ANSWERED)
        return CampaignStatus(
            id=campaign,
            state=CampaignState(state),
            contacts=int(stats.get("contacts", "0")),
            contacts_by_state=by_prefix["state"],
            contacts_by_outcome=by_prefix["outcome"],
            calls_by_outcome=calls,
            attempts=int(stats.get("dispatched", "0")),
            calls_finished=finished,
            answer_rate=round(answered / finished, 4) if finished else 0.0,
            abandon_rate=round(calls.get("abandoned", 0) / human, 4) if human else 0.0,
            in_progress=in_progress,
            cps=round(recent / 10.0, 2),
        )

    # ------------------------------------------------------------------ do-not-call

    def dnc_add(self, name: str, numbers: Sequence[str]) -> IntakeResult:
        """Add numbers (any format ``phonenumbers`` reads) to a DNC list; bad ones are rejected by row."""
        good, rejected = self._dnc_numbers(numbers)
        return IntakeResult(accepted=self.state.dnc_add(name, good), rejected=rejected)

    def dnc_remove(self, name: str, numbers: Sequence[str]) -> int:
        good, _ = self._dnc_numbers(numbers)
        return self.state.dnc_remove(name, good)

    def dnc_listed(self, name: str, number: str) -> bool:
        good, _ = self._dnc_numbers([number])
        return bool(good) and self.state.dnc_contains(name, good[0])

    def _dnc_numbers(self, numbers: Sequence[str]) -> tuple[list[str], list[Rejection]]:
        good: list[str] = []
        rejected: list[Rejection] = []
        for row, raw in enumerate(numbers, start=1):
            try:
                good.append(e164(raw, self.region))
            except InvalidNumber as exc:
                rejected.append(Rejection(row=row, field="number", reason=str(exc)))
        return good, rejected
