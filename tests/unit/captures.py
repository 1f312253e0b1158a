"""Read the recorded FreeSWITCH sessions and their readable transcripts into expectations.

The transcript is written by the recorder, independently of our parser: each ``<< type`` line is one
frame the switch sent, event lines carry ``EVENT <name> uuid=<Unique-ID or -> Key=value ...`` and the
``|`` lines under a reply are its body split at newlines. Tests compare what our parser makes of the
raw bytes (``NAME.txt``) against these lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tests.conftest import CAPTURES

_RECEIVED = re.compile(r"^\s*[0-9.]+ << (\S+)  ?(.*)$")
_BODY = re.compile(r"^ {12}\| ?(.*)$")


@dataclass
class Expected:
    """One frame as the transcript shows it."""

    content_type: str
    headers: dict[str, str] = field(default_factory=dict)  # outer headers (non-event frames)
    event_name: str | None = None
    event_fields: dict[str, str | None] = field(default_factory=dict)  # Unique-ID (None for "-"), states, causes
    body_lines: list[str] | None = None


def stream_names() -> list[str]:
    """Every recorded session: NAME for which NAME.txt and NAME.transcript.txt exist."""
    return sorted(p.name.removesuffix(".transcript.txt") for p in CAPTURES.glob("*.transcript.txt"))


def reply_names() -> list[str]:
    """The single-reply captures ``api_<label>.txt`` listed in api_replies.index.txt."""
    return sorted(p.stem for p in CAPTURES.glob("api_*.txt") if not p.name.startswith("api_replies"))


def received(name: str) -> bytes:
    return (CAPTURES / f"{name}.txt").read_bytes()


def sent(name: str) -> bytes:
    return (CAPTURES / f"{name}.sent.txt").read_bytes()


def transcript(name: str) -> list[Expected]:
    frames: list[Expected] = []
    for line in (CAPTURES / f"{name}.transcript.txt").read_text().splitlines():
        body = _BODY.match(line)
        if body and frames:
            if frames[-1].body_lines is None:
                frames[-1].body_lines = []
            frames[-1].body_lines.append(body.group(1))
            continue
        match = _RECEIVED.match(line)
        if not match or match.group(1).startswith("["):  # "[socket closed by peer]" is not a frame
            continue
        content_type, rest = match.groups()
        if rest.startswith("EVENT "):
            words = rest.split()
            fields: dict[str, str | None] = {}
            for word in words[2:]:
                key, _, value = word.partition("=")
                if key == "uuid":
                    fields["Unique-ID"] = None if value == "-" else value
                else:
                    fields[key] = value
            frames.append(Expected(content_type, event_name=words[1], event_fields=fields))
        else:
            frames.append(Expected(content_type, headers=json.loads(rest) if rest.strip() else {}))
    return frames


def sent_commands(name: str) -> list[str]:
    """The command lines of NAME.sent.txt (``>>`` lines of the transcript agree with them)."""
    return [block.split("\n", 1)[0] for block in sent(name).decode().split("\n\n") if block.strip()]
