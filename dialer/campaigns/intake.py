"""Contact intake: rows in, normalised contacts and per-row rejections out (no Redis here).

Numbers are parsed with ``phonenumbers`` (the region applies to numbers written without ``+``) and must
be valid for their country; they are stored in E.164. The contact's time zones come from the number
(phonenumbers' ``timezone`` module: one zone for most numbers, several for some countries), unless the
row names one; a number with no known zone takes the campaign's default zone.

Matching a number against its country's patterns (its type) is most of intake's CPU, and both the
validity check and the time zone lookup start with it: each number's type is found once and serves both
(``bench/bench_enqueue.py`` measures intake).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as number_zones
from pydantic import TypeAdapter, ValidationError

from dialer.campaigns.models import ContactIn, Rejection
from dialer.payload import E164

UNKNOWN_ZONE = "Etc/Unknown"
ROWS = TypeAdapter(list[ContactIn])


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


def normalise_number(raw: str, region: str) -> tuple[phonenumbers.PhoneNumber, int]:
    """The parsed number and its ``PhoneNumberType``, or InvalidNumber. A number is valid exactly when its
    type is known: that is the test ``is_valid_number`` makes, here without finding the type twice."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"not a phone number: {exc}") from exc
    kind = phonenumbers.number_type(parsed)
    if kind == PhoneNumberType.UNKNOWN:
        raise InvalidNumber(f"{raw!r} is not a valid number (region {region} for numbers without +)")
    return parsed, kind


def to_e164(number: phonenumbers.PhoneNumber) -> str:
    text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not re.fullmatch(E164, text):
        raise InvalidNumber(f"{text} cannot be dialled as E.164")
    return text


def e164(raw: str, region: str) -> str:
    """``raw`` in E.164, or InvalidNumber saying why not."""
    return to_e164(normalise_number(raw, region)[0])


def zones_for(number: phonenumbers.PhoneNumber, kind: int, default_zone: str) -> tuple[str, ...]:
    """``time_zones_for_number`` given the (valid) number's type, which it would otherwise find again."""
    if phonenumbers.is_number_type_geographical(kind, number.country_code or 0):  # always set once parsed
        found = number_zones.time_zones_for_geographical_number(number)
    else:  # toll-free, premium ...: the country's zones; rare enough to let phonenumbers redo the type
        found = number_zones.time_zones_for_number(number)
    zones = tuple(zone for zone in found if zone != UNKNOWN_ZONE)
    return zones or (default_zone,)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    return ".".join(str(part) for part in error["loc"]) or "row", error["msg"]


def _named(raw: Any) -> str | None:
    contact_id = raw.get("contact_id") if isinstance(raw, Mapping) else None
    return contact_id if isinstance(contact_id, str) else None


def _models(rows: list[Any], first_row: int) -> tuple[list[tuple[int, ContactIn]], list[Rejection]]:
    """(row, model) for each well-formed row, and the rejections of the others. A list of well-formed rows,
    the usual case, is validated in one go, at a third of the cost of row by row; only a list with a bad
    row is gone through again one row at a time, to find which ones."""
    try:
        return list(enumerate(ROWS.validate_python(rows), start=first_row)), []
    except ValidationError:
        pass
    models: list[tuple[int, ContactIn]] = []
    rejected: list[Rejection] = []
    for row, raw in enumerate(rows, start=first_row):
        try:
            models.append((row, ContactIn.model_validate(raw)))
        except ValidationError as exc:
            field, reason = _first_error(exc)
            rejected.append(Rejection(row=row, contact_id=_named(raw), field=field, reason=reason))
    return models, rejected


def read_rows(
    rows: Iterable[Mapping[str, Any]], region: str, default_zone: str, first_row: int = 1
) -> tuple[list[Contact], list[Rejection]]:
    """Validate every row; a bad row becomes a rejection naming its row (1-based, the first being
    ``first_row``), field and reason."""
    rows = list(rows)
    models, rejected = _models(rows, first_row)
    contacts: list[Contact] = []
    for row, item in models:
        try:
            parsed, kind = normalise_number(item.number, region)
            number = to_e164(parsed)
            extra = item.all_metadata()
            metadata = json.dumps(extra, separators=(",", ":"), default=str) if extra else "{}"
        except (InvalidNumber, TypeError, ValueError) as exc:
            field = "number" if isinstance(exc, InvalidNumber) else "metadata"
            rejected.append(Rejection(row=row, contact_id=_named(rows[row - first_row]), field=field, reason=str(exc)))
            continue
        zones = (item.timezone,) if item.timezone else zones_for(parsed, kind, default_zone)
        contacts.append(Contact(item.contact_id, number, zones, metadata, row))
    rejected.sort(key=lambda rejection: rejection.row)
    return contacts, rejected
