"""Events out: who is subscribed to what, FreeSWITCH's filter rules, and one serialisation per format.

An event is laid out once per format that some connection wants (plain, json, xml) and the same
bytes object is queued on every connection that passes its subscription and filters; with a few
thousand events per second and several listeners that is what keeps the simulator cheap.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from dialer.esl.server import EVENT_SERIALISERS, Headers

Sent = Callable[[float], None]  # told the time an event's bytes were handed to the socket

# Every event name mod_event_socket accepts in ``event`` / ``nixevent`` (switch_event.c EVENT_NAMES).
_EVENT_WORDS = """CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_ANSWER
    CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD
    CHANNEL_UNHOLD CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA
    CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK CHANNEL_APPLICATION CHANNEL_ORIGINATE CHANNEL_UUID
    API LOG INBOUND_CHAN OUTBOUND_CHAN STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK NOTALK SESSION_CRASH
    MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE PRESENCE_IN NOTIFY_IN PRESENCE_OUT PRESENCE_PROBE
    MESSAGE_WAITING MESSAGE_QUERY ROSTER CODEC BACKGROUND_JOB DETECTED_SPEECH DETECTED_TONE
    PRIVATE_COMMAND HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE EXE_SCHEDULE RE_SCHEDULE RELOADXML
    NOTIFY PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE RECV_MESSAGE REQUEST_PARAMS
    CHANNEL_DATA GENERAL COMMAND SESSION_HEARTBEAT CLIENT_DISCONNECTED SERVER_DISCONNECTED
    SEND_INFO RECV_INFO RECV_RTCP_MESSAGE SEND_RTCP_MESSAGE CALL_SECURE NAT RECORD_START RECORD_STOP
    PLAYBACK_START PLAYBACK_STOP CALL_UPDATE FAILURE SOCKET_DATA MEDIA_BUG_START MEDIA_BUG_STOP
    CONFERENCE_DATA_QUERY CONFERENCE_DATA CALL_SETUP_REQ CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE
    TEXT SHUTDOWN_REQUESTED ALL"""
EVENT_NAMES = frozenset(_EVENT_WORDS.split())


class Listener(Protocol):
    """A connection as the bus sees it."""

    subscription: Subscription

    def send_event(self, data: bytes, sent: Sent | None = None) -> None: ...


class Subscription:
    """One connection's ``event`` / ``nixevent`` / ``filter`` state."""

    def __init__(self) -> None:
        self.format: str | None = None  # None: not listening
        self.all = False
        self.names: set[str] = set()
        self.subclasses: set[str] = set()
        self.filters: list[tuple[str, str]] = []

    def subscribe(self, fmt: str, words: Iterable[str]) -> bool:
        """``event <fmt> <words>``; False when no word was an event name (``-ERR no keywords supplied``)."""
        found = False
        custom = False
        for word in words:
            if custom and word not in EVENT_NAMES:
                self.subclasses.add(word)
                found = True
            elif word == "ALL":
                self.all = found = True
            elif word in EVENT_NAMES:
                self.names.add(word)
                custom = word == "CUSTOM"
                found = True
        if found:
            self.format = fmt
        return found

    def unsubscribe(self, words: Iterable[str]) -> None:
        custom = False
        for word in words:
            if word == "ALL":
                self.all = False
                self.names.clear()
                self.subclasses.clear()
            elif word in EVENT_NAMES:
                self.names.discard(word)
                custom = word == "CUSTOM"
            elif custom:
                self.subclasses.discard(word)

    def clear(self) -> None:
        self.format = None
        self.all = False
        self.names.clear()
        self.subclasses.clear()

    def wants(self, name: str, subclass: str | None) -> bool:
        if self.format is None:
            return False
        if self.all:
            return True
        if name not in self.names:
            return False
        # CUSTOM without subclasses takes every custom event, as in mod_event_socket.
        return name != "CUSTOM" or not self.subclasses or subclass in self.subclasses

    def passes(self, event: SimEvent) -> bool:
        """mod_event_socket's filter loop: filters are OR'ed, an event lacking a filtered header fails
        that filter, a value prefixed ``-`` vetoes matching events, ``/regex/`` matches by search."""
        if not self.filters:
            return True
        send = False
        for header, value in self.filters:
            actual = event.field(header)
            if actual is None:
                continue
            positive = True
            wanted = value.lstrip(" +-")
            if value.lstrip(" +").startswith("-"):
                positive = False
            if send and positive:
                continue
            if wanted.startswith("/"):
                pattern = wanted[1:-1] if wanted.endswith("/") and len(wanted) > 1 else wanted[1:]
                matched = re.search(pattern, actual) is not None
            else:
                matched = actual.lower() == wanted.lower()
            if matched:
                if not positive:
                    return False
                send = True
        return send


class SimEvent:
    """Headers in FreeSWITCH order plus an optional body, serialised lazily and at most once per format."""

    __slots__ = ("_bytes", "_fields", "body", "headers", "name", "subclass")

    def __init__(self, name: str, headers: Headers, body: str | None = None, subclass: str | None = None):
        self.name = name
        self.subclass = subclass
        self.headers = headers
        self.body = body
        self._bytes: dict[str, bytes] = {}
        self._fields: dict[str, str] | None = None

    def field(self, name: str) -> str | None:
        if self._fields is None:
            self._fields = dict(self.headers)
        return self._fields.get(name)

    def serialise(self, fmt: str) -> bytes:
        data = self._bytes.get(fmt)
        if data is None:
            data = self._bytes[fmt] = EVENT_SERIALISERS[fmt](self.headers, self.body)
        return data


class Clock:
    """Event-Date-* values; the formatted strings change once a second, so they are cached."""

    def __init__(self) -> None:
        self._second = -1
        self._local = ""
        self._gmt = ""

    def stamp(self) -> tuple[int, str, str]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._gmt = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second))
        return int(now * 1_000_000), self._local, self._gmt


class Bus:
    """Fans events out to listeners; also owns Event-Sequence and the lost-events fault."""

    def __init__(self, rng: random.Random | None = None) -> None:
        # replaced, never mutated: a listener dropped while an event is being fanned out (a slow
        # client) must not make the loop skip the next one
        self.listeners: tuple[Listener, ...] = ()
        self.sequence = 0
        self.lose_rate = 0.0
        self.published = 0
        self.lost = 0
        self._rng = rng or random.Random()
        self._interest: dict[tuple[str, str | None], bool] = {}

    def add(self, listener: Listener) -> None:
        self.listeners = (*self.listeners, listener)
        self.changed()

    def remove(self, listener: Listener) -> None:
        self.listeners = tuple(lst for lst in self.listeners if lst is not listener)
        self.changed()

    def changed(self) -> None:
        """A subscription changed: forget the cached answers of :meth:`interested`."""
        self._interest.clear()

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def interested(self, name: str, subclass: str | None = None) -> bool:
        """Does any listener want this event? Lets the switch skip building headers nobody reads."""
        key = (name, subclass)
        answer = self._interest.get(key)
        if answer is None:
            answer = self._interest[key] = any(lst.subscription.wants(name, subclass) for lst in self.listeners)
        return answer

    def publish(
        self, event: SimEvent, only: Callable[[Listener], bool] | None = None, sent: Sent | None = None
    ) -> None:
        self.published += 1
        delivered = False
        for listener in self.listeners:
            sub = listener.subscription
            if not sub.wants(event.name, event.subclass) or not sub.passes(event):
                continue
            if only is not None and not only(listener):
                continue
            if self.lose_rate and self._rng.random() < self.lose_rate:
                self.lost += 1
                continue
            assert sub.format is not None  # wants() is False without a format
            listener.send_event(event.serialise(sub.format), sent)
            delivered = True
        if sent is not None and not delivered:
            sent(time.time())
