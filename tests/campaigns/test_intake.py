"""Intake: numbers normalised to E.164, time zones from the number, bad rows rejected with reasons."""

from __future__ import annotations

import json
import re

import phonenumbers
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import timezone as number_zones

from dialer.campaigns.intake import read_rows
from dialer.payload import E164


def test_numbers_are_normalised_to_e164_with_the_default_region() -> None:
    rows = [
        {"contact_id": "a", "number": "(212) 555-1234"},
        {"contact_id": "b", "number": "+44 20 7123 4567"},
        {"contact_id": "c", "number": "020 7123 4567"},
    ]
    contacts, rejected = read_rows(rows, "US", "UTC")
    assert rejected[0].row == 3
    assert rejected[0].field == "number"
    assert [c.number for c in contacts] == ["+12125551234", "+442071234567"]
    uk, _ = read_rows(rows[2:], "GB", "UTC")
    assert uk[0].number == "+442071234567"


def test_time_zone_comes_from_the_number_unless_overridden() -> None:
    rows = [
        {"contact_id": "ny", "number": "+12125551234"},
        {"contact_id": "la", "number": "+13105551234"},
        {"contact_id": "moved", "number": "+12125551234", "timezone": "Europe/Paris"},
    ]
    contacts, _ = read_rows(rows, "US", "UTC")
    assert [c.zones for c in contacts] == [("America/New_York",), ("America/Los_Angeles",), ("Europe/Paris",)]


def test_a_number_in_a_country_with_several_zones_keeps_them_all() -> None:
    contacts, _ = read_rows([{"contact_id": "ru", "number": "+79161234567"}], "US", "UTC")
    assert len(contacts[0].zones) > 1
    assert "Europe/Moscow" in contacts[0].zones


def test_bad_rows_name_their_row_field_and_reason_and_good_rows_pass() -> None:
    rows = [
        {"contact_id": "ok1", "number": "+12125551234"},
        {"contact_id": "bad id!", "number": "+12125551234"},
        {"contact_id": "nonum"},
        {"contact_id": "junk", "number": "call me"},
        {"contact_id": "fake", "number": "+15551230000"},  # 555 numbers are not assigned
        {"contact_id": "zone", "number": "+12125551234", "timezone": "Mars/Olympus"},
        "not an object",
        {"contact_id": "ok2", "number": "2125551235"},
    ]
    contacts, rejected = read_rows(rows, "US", "UTC")
    assert [c.contact_id for c in contacts] == ["ok1", "ok2"]
    assert [(r.row, r.field) for r in rejected] == [
        (2, "contact_id"),
        (3, "number"),
        (4, "number"),
        (5, "number"),
        (6, "timezone"),
        (7, "row"),
    ]
    assert rejected[1].contact_id == "nonum"
    assert "not a valid number" in rejected[3].reason
    assert "unknown time zone" in rejected[4].reason


def test_other_columns_become_metadata() -> None:
    rows = [{"contact_id": "m", "number": "+12125551234", "name": "Ada", "metadata": {"tier": 2}}]
    contacts, _ = read_rows(rows, "US", "UTC")
    assert json.loads(contacts[0].metadata_json) == {"name": "Ada", "tier": 2}


def reference_zones(number: str) -> tuple[str, ...] | None:
    """What phonenumbers' own validity check and time zone lookup say, each finding the type itself
    (and the dialler's E.164 pattern, which refuses a few valid short numbers)."""
    try:
        parsed = phonenumbers.parse(number, "US")
    except phonenumbers.NumberParseException:
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(parsed) or not re.fullmatch(E164, e164):
        return None
    zones = tuple(z for z in number_zones.time_zones_for_number(parsed) if z != "Etc/Unknown")
    return zones or ("UTC",)


def intake_zones(number: str) -> tuple[str, ...] | None:
    contacts, _ = read_rows([{"contact_id": "x", "number": number}], "US", "UTC")
    return contacts[0].zones if contacts else None


EXAMPLES = sorted(
    {
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in vars(phonenumbers.PhoneNumberType).values()
        if isinstance(kind, int) and (example := phonenumbers.example_number_for_type(region, kind)) is not None
    }
)


def test_every_example_number_of_every_region_and_type_is_judged_as_phonenumbers_does() -> None:
    """The number's type, found once, decides validity and zones exactly as is_valid_number and
    time_zones_for_number do (mobile, toll-free, premium, VoIP ... of every region)."""
    assert len(EXAMPLES) > 900
    assert [intake_zones(number) for number in EXAMPLES] == [reference_zones(number) for number in EXAMPLES]


@given(
    st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
    st.text(alphabet="0123456789", min_size=4, max_size=13),
)
def test_random_numbers_are_accepted_and_zoned_as_phonenumbers_does(country_code: int, digits: str) -> None:
    number = f"+{country_code}{digits}"
    assert intake_zones(number) == reference_zones(number)
