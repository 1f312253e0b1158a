"""Contact intake: rows in, normalised contacts and per-row rejections out (no Redis here).

Numbers are parsed with ``phonenumbers`` (the region applies to numbers written without ``+``) and must
be valid for their country; they are stored in E.164. The contact's time zones come from the number
(phonenumbers' ``timezone`` module: one zone for most numbers, several for some countries), unless the
row names one; a number with no known zone takes the campaign's default zone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from phonenumbers import timezone as number_zones
from pydantic import ValidationError

from dialer.campaigns.models import ContactIn, Rejection
from dialer.payload import E164

UNKNOWN_ZONE = "Etc/Unknown"


class InvalidNumber(ValueError):
    pass


@dataclass(frozen=True)
class Contact:
    """A contact ready to store: E.164 number, candidate time zones, metadata as JSON."""

    contact_id: str
    number: str
    zones: tuple[str, ...]
    metadata_json: str
    row: int


def normalise_number(raw: str, region: str) -> phonenumbers.PhoneNumber:
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber(f"{raw!r} is not a valid number (region {region} for numbers without +)")
    return parsed


def to_e164(number: phonenumbers.PhoneNumber) -> str:
    text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not re.fullmatch(E164, text):
        raise InvalidNumber(f"{text} cannot be dialled as E.164")
    return text


def e164(raw: str, region: str) -> str:
    """``raw`` in E.164, or InvalidNumber saying why not."""
    return to_e164(normalise_number(raw, region))


def zones_for(number: phonenumbers.PhoneNumber, default_zone: str) -> tuple[str, ...]:
    zones = tuple(zone for zone in number_zones.time_zones_for_number(number) if zone != UNKNOWN_ZONE)
    return zones or (default_zone,)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    return ".".join(str(part) for part in error["loc"]) or "row", error["msg"]


def read_rows(
    rows: Iterable[Mapping[str, Any]], region: str, default_zone: str
) -> tuple[list[Contact], list[Rejection]]:
    """Validate every row; a bad row becomes a rejection naming its row (1-based), field and reason."""
    contacts: list[Contact] = []
    rejected: list[Rejection] = []
    for row, raw in enumerate(rows, start=1):
        contact_id = raw.get("contact_id") if isinstance(raw, Mapping) else None
        named = contact_id if isinstance(contact_id, str) else None
        try:
            item = ContactIn.model_validate(raw)
        except ValidationError as exc:
            field, reason = _first_error(exc)
            rejected.append(Rejection(row=row, contact_id=named, field=field, reason=reason))
            continue
        try:
            parsed = normalise_number(item.number, region)
            number = to_e164(parsed)
            metadata = json.dumps(item.all_metadata(), separators=(",", ":"), default=str)
        except (InvalidNumber, TypeError, ValueError) as exc:
            field = "number" if isinstance(exc, InvalidNumber) else "metadata"
            rejected.append(Rejection(row=row, contact_id=named, field=field, reason=str(exc)))
            continue
        zones = (item.timezone,) if item.timezone else zones_for(parsed, default_zone)
        contacts.append(Contact(item.contact_id, number, zones, metadata, row))
    return contacts, rejected
