"""Replay the client side of a recording against the simulator.

Before each command the replayer waits until the simulator has sent at least the events (counted
by Event-Name) that the real switch had sent before that command in the recording. That keeps the
script's causality (``uuid_kill`` after the answer, ``uuid_bridge`` after both parks) without the
recording's sleeps. HEARTBEAT, RE_SCHEDULE and API events are not waited for: the first two are on
a 20 s timer, and the simulator fires API events at slightly different points.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dialer.esl import Event, Frame, parse_event, parse_frames
from dialer.esl.server import CommandParser

from .client import Client

CAPTURES = Path(__file__).resolve().parent.parent / "data" / "captures"
NOT_WAITED = {"HEARTBEAT", "RE_SCHEDULE", "API"}


@dataclass
class Recording:
    commands: list[bytes]  # each client command, exact bytes
    frames: list[Frame]  # what the switch sent
    waits: list[Counter[str]]  # events seen before each command in the recording

    @property
    def events(self) -> list[Event]:
        return [parse_event(f) for f in self.frames if f.is_event]

    @property
    def replies(self) -> list[Frame]:
        return [f for f in self.frames if not f.is_event]


def load(name: str) -> Recording:
    sent = (CAPTURES / f"{name}.sent.txt").read_bytes()
    received = (CAPTURES / f"{name}.txt").read_bytes()
    parser = CommandParser()
    parser.feed(sent)
    commands = []
    for command in parser:
        raw = command.line + "\n" + "".join(f"{k}: {v}\n" for k, v in command.headers.items()) + "\n"
        commands.append(raw.encode())
    frames = parse_frames(received)
    # The readable timeline says which events had arrived when each command was sent.
    waits: list[Counter[str]] = []
    seen: Counter[str] = Counter()
    for line in (CAPTURES / f"{name}.transcript.txt").read_text().splitlines():
        words = line.split()
        if len(words) > 1 and words[1] == ">>":
            waits.append(Counter(seen))
        elif len(words) > 3 and words[1] == "<<" and words[3] == "EVENT" and words[4] not in NOT_WAITED:
            seen[words[4]] += 1
    return Recording(commands, frames, waits)


def replay(client: Client, recording: Recording, settle: bool = True) -> list[Frame]:
    """Send each command once the matching events have arrived; returns every frame received."""
    client.next_frame()  # auth/request
    got: Counter[str] = Counter()
    consumed = 0

    def count_new() -> None:
        nonlocal consumed
        for frame in client.frames[consumed:]:
            if frame.is_event:
                name = parse_event(frame).name
                if name not in NOT_WAITED:
                    got[name] += 1
        consumed = len(client.frames)

    for command, wait in zip(recording.commands, recording.waits, strict=False):
        count_new()
        while any(got[name] < n for name, n in wait.items()):
            client.next_frame()
            count_new()
        client.send(command)
        client.reply()
        if command.startswith(b"exit"):
            settle = False  # the connection is closing
            break
    if settle:  # wait for as many events of each name as the real switch sent, then stop
        total: Counter[str] = Counter(e.name for e in recording.events if e.name not in NOT_WAITED)
        count_new()
        while any(got[name] < n for name, n in total.items()):
            client.next_frame()
            count_new()
    return client.frames


def legs(events: list[Event]) -> dict[str, list[str]]:
    """Event-Name sequence per Unique-ID, in order of first appearance."""
    result: dict[str, list[str]] = {}
    for event in events:
        if event.unique_id:
            result.setdefault(event.unique_id, []).append(event.name)
    return result
