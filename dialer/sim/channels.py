"""A simulated channel (one leg of a call) and the headers FreeSWITCH puts on its events.

Header names and their order are copied from the recordings (``tests/data/captures``); values are
this leg's own (uuids, numbers, microsecond timestamps). Optional blocks appear when the real switch
adds them: ``Caller-Network-Addr`` once the far end has answered anything, the codec headers once
media is negotiated, ``Caller-Caller-ID-Name`` after the caller id flip at answer, ``Hangup-Cause``
once hung up, the ``Other-Leg-*`` profile while another leg is attached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scenarios import Agent, Callee

# switch_channel_state_t and switch_channel_callstate_t, as numbered in switch_types.h.
STATE_NUMBER = {
    "CS_NEW": "0", "CS_INIT": "1", "CS_ROUTING": "2", "CS_SOFT_EXECUTE": "3", "CS_EXECUTE": "4",
    "CS_EXCHANGE_MEDIA": "5", "CS_PARK": "6", "CS_CONSUME_MEDIA": "7", "CS_HIBERNATE": "8", "CS_RESET": "9",
    "CS_HANGUP": "10", "CS_REPORTING": "11", "CS_DESTROY": "12", "CS_NONE": "13",
}  # fmt: skip
CALLSTATE_NUMBER = {
    "DOWN": "0", "DIALING": "1", "RINGING": "2", "EARLY": "3", "ACTIVE": "4", "HELD": "5", "RING_WAIT": "6",
    "HANGUP": "7", "UNHELD": "8",
}  # fmt: skip

# Hangup cause -> Q.850 code (switch_channel.c CAUSE_CHART), for the causes the simulator produces.
Q850 = {
    "UNALLOCATED_NUMBER": 1, "NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_USER_RESPONSE": 18, "NO_ANSWER": 19,
    "CALL_REJECTED": 21, "DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28, "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42, "SERVICE_NOT_IMPLEMENTED": 79, "ORIGINATOR_CANCEL": 487, "MANAGER_REQUEST": 503,
    "USER_NOT_REGISTERED": 606, "SYSTEM_SHUTDOWN": 503, "LOSE_RACE": 502, "ALLOTTED_TIMEOUT": 602,
    "CHAN_NOT_IMPLEMENTED": 66, "INVALID_GATEWAY": 608, "MEDIA_TIMEOUT": 604,
}  # fmt: skip

CODEC = (
    ("Channel-Read-Codec-Name", "PCMU"),
    ("Channel-Read-Codec-Rate", "8000"),
    ("Channel-Read-Codec-Bit-Rate", "64000"),
    ("Channel-Write-Codec-Name", "PCMU"),
    ("Channel-Write-Codec-Rate", "8000"),
    ("Channel-Write-Codec-Bit-Rate", "64000"),
)


@dataclass(eq=False, slots=True)
class Leg:
    """One channel. Mutable: the switch moves it through states and fires events from it."""

    uuid: str
    number: str  # Caller-Destination-Number
    channel_name: str
    created_us: int
    call_uuid: str = ""  # Channel-Call-UUID: the A leg's uuid on both legs of a bridge
    cid_number: str = "0000000000"
    cid_name: str = "Outbound Call"
    gateway: str | None = None
    user: str | None = None
    presence_id: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    state: str = "CS_NONE"
    call_state: str = "DOWN"
    answer_state: str = "ringing"
    hangup_cause: str | None = None
    progress_us: int = 0
    progress_media_us: int = 0
    answered_us: int = 0
    hangup_us: int = 0
    bridged_us: int = 0
    transfer_us: int = 0
    network: bool = False
    media: bool = False
    flipped: bool = False  # caller id flipped at answer: the callee's number becomes the caller id
    cid_name_shown: bool = False  # Caller-Caller-ID-Name present (after the flip, or on agent legs)
    callee_name_shown: bool = True  # Caller-Callee-ID-Name present (before the flip, and once bridged)
    hit_dialplan: bool = False
    dialplan: str | None = None
    transfer_source: str | None = None
    rdnis: bool = False
    other: Leg | None = None
    other_type: str | None = None
    bridged: Leg | None = None
    application: str = ""
    application_data: str = ""
    application_uuid: str = ""
    parked: bool = False
    gone: bool = False  # hung up; events after this point are the hangup sequence only
    callee: Callee | None = None
    agent: Agent | None = None
    timers: list[Any] = field(default_factory=list)
    job: Any = None  # the pending originate (switch.PendingOriginate) while this leg is being dialled
    sip_status: int | None = None
    disposition: str | None = None

    # ------------------------------------------------------------------ header blocks

    def channel_headers(self, out: list[tuple[str, str]]) -> None:
        """The channel data block common to every CHANNEL_* event."""
        out += (
            ("Channel-State", self.state),
            ("Channel-Call-State", self.call_state),
            ("Channel-State-Number", STATE_NUMBER.get(self.state, "0")),
            ("Channel-Name", self.channel_name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", "outbound"),
            ("Presence-Call-Direction", "outbound"),
            ("Channel-HIT-Dialplan", "true" if self.hit_dialplan else "false"),
        )
        if self.presence_id:
            out.append(("Channel-Presence-ID", self.presence_id))
        out += (("Channel-Call-UUID", self.call_uuid or self.uuid), ("Answer-State", self.answer_state))
        if self.hangup_cause:
            out.append(("Hangup-Cause", self.hangup_cause))
        if self.media:
            out += CODEC
        self.profile_headers("Caller", out)
        other = self.other
        if other is not None:
            out.append(("Other-Type", self.other_type or "originatee"))
            other.profile_headers("Other-Leg", out)

    def profile_headers(self, prefix: str, out: list[tuple[str, str]]) -> None:
        """The caller profile, as ``Caller-*`` on the leg itself or ``Other-Leg-*`` on its peer."""
        caller = prefix == "Caller"
        out += ((f"{prefix}-Direction", "outbound"), (f"{prefix}-Logical-Direction", "outbound"))
        if self.dialplan:
            out.append((f"{prefix}-Dialplan", self.dialplan))
        if self.cid_name_shown:
            out.append((f"{prefix}-Caller-ID-Name", self.cid_name))
        flipped = self.flipped
        out += (
            (f"{prefix}-Caller-ID-Number", self.number if flipped else self.cid_number),
            (f"{prefix}-Orig-Caller-ID-Number", self.cid_number),
        )
        if self.callee_name_shown:
            out.append((f"{prefix}-Callee-ID-Name", "Outbound Call"))
        out.append((f"{prefix}-Callee-ID-Number", self.cid_number if flipped else self.number))
        if self.network:
            out.append((f"{prefix}-Network-Addr", "127.0.0.1"))
        out += (
            (f"{prefix}-ANI", self.cid_number),
            (f"{prefix}-Destination-Number", self.number),
            (f"{prefix}-Unique-ID", self.uuid),
            (f"{prefix}-Source", "src/switch_ivr_originate.c"),
        )
        if self.transfer_source:
            out.append((f"{prefix}-Transfer-Source", self.transfer_source))
        out.append((f"{prefix}-Context", "default"))
        if self.rdnis:
            out.append((f"{prefix}-RDNIS", self.number))
        out.append((f"{prefix}-Channel-Name", self.channel_name))
        if caller:
            out.append(("Caller-Profile-Index", "2" if self.transfer_source else "1"))
        created = str(self.created_us)
        out += (
            (f"{prefix}-Profile-Created-Time", str(self.transfer_us or self.created_us)),
            (f"{prefix}-Channel-Created-Time", created),
            (f"{prefix}-Channel-Answered-Time", str(self.answered_us)),
            (f"{prefix}-Channel-Progress-Time", str(self.progress_us)),
            (f"{prefix}-Channel-Progress-Media-Time", str(self.progress_media_us)),
            (f"{prefix}-Channel-Hangup-Time", str(self.hangup_us)),
            (f"{prefix}-Channel-Transfer-Time", str(self.transfer_us)),
            (f"{prefix}-Channel-Resurrect-Time", "0"),
            (f"{prefix}-Channel-Bridged-Time", str(self.bridged_us)),
            (f"{prefix}-Channel-Last-Hold", "0"),
            (f"{prefix}-Channel-Hold-Accum", "0"),
            (f"{prefix}-Screen-Bit", "true"),
            (f"{prefix}-Privacy-Hide-Name", "false"),
            (f"{prefix}-Privacy-Hide-Number", "false"),
        )

    def variable_headers(self, out: list[tuple[str, str]]) -> None:
        out += [("variable_" + name, value) for name, value in self.variables.items()]

    # ------------------------------------------------------------------ variables over the call

    def set_create_variables(self, sip_port: int) -> None:
        """What the real switch has set by CHANNEL_CREATE (a representative subset, same names)."""
        v = self.variables
        base = {
            "direction": "outbound",
            "is_outbound": "true",
            "uuid": self.uuid,
            "call_uuid": self.call_uuid or self.uuid,
            "session_id": "1",
            "sip_invite_domain": "127.0.0.1",
            "sip_local_network_addr": "127.0.0.1",
            "sip_profile_name": "gateway" if self.gateway else "dialer",
            "video_media_flow": "disabled",
            "text_media_flow": "disabled",
            "channel_name": self.channel_name,
            "sip_destination_url": f"sip:{self.number}@127.0.0.1:{sip_port}",
            "originate_early_media": "false",
            "originate_endpoint": "sofia",
            "rtp_use_codec_string": "PCMU,PCMA",
            "local_media_ip": "127.0.0.1",
            "local_media_port": "16518",
            "advertised_media_ip": "127.0.0.1",
            "audio_media_flow": "sendrecv",
            "sip_req_uri": f"{self.number}@127.0.0.1:{sip_port}",
            "sip_to_host": f"127.0.0.1:{sip_port}",
            "sip_from_host": "127.0.0.1",
            "sofia_profile_name": "dialer",
            "recovery_profile_name": "dialer",
            "sofia_profile_url": "sip:mod_sofia@127.0.0.1:5080",
        }
        if self.gateway:
            base["sip_gateway_name"] = self.gateway
        # the originate's own variables sit between the channel basics and the SIP details, as in the capture
        self.variables = {**base, **v}

    def set_media_variables(self, sip_port: int) -> None:
        self.variables.update(
            {
                "remote_audio_media_flow": "sendrecv",
                "rtp_use_codec_name": "PCMU",
                "rtp_use_codec_rate": "8000",
                "rtp_use_codec_ptime": "20",
                "read_codec": "PCMU",
                "read_rate": "8000",
                "write_codec": "PCMU",
                "write_rate": "8000",
                "remote_media_ip": "127.0.0.1",
                "remote_media_port": "6000",
                "sip_network_ip": "127.0.0.1",
                "sip_network_port": str(sip_port),
                "sip_from_user": self.cid_number,
                "sip_to_user": self.number,
                "sip_call_id": self.uuid,
            }
        )

    def set_hangup_variables(self, now_us: int) -> None:
        """The CDR variables of CHANNEL_HANGUP_COMPLETE: causes, SIP status, durations."""
        cause = self.hangup_cause or "NORMAL_CLEARING"
        created, answered = self.created_us, self.answered_us
        billusec = now_us - answered if answered else 0
        duration = now_us - created
        v = self.variables
        v["hangup_cause"] = cause
        v["hangup_cause_q850"] = str(Q850.get(cause, 16))
        for name, stamp in (("start", created), ("answer", answered), ("progress", self.progress_us),
                            ("progress_media", self.progress_media_us), ("end", now_us),
                            ("bridge", self.bridged_us)):  # fmt: skip
            v[f"{name}_epoch"] = str(stamp // 1_000_000)
            v[f"{name}_uepoch"] = str(stamp)
        v["duration"] = str(duration // 1_000_000)
        v["billsec"] = str(billusec // 1_000_000)
        v["answersec"] = str((answered - created) // 1_000_000 if answered else 0)
        v["mduration"] = str(duration // 1000)
        v["billmsec"] = str(billusec // 1000)
        v["answermsec"] = str((answered - created) // 1000 if answered else 0)
        v["uduration"] = str(duration)
        v["billusec"] = str(billusec)
        if self.sip_status is not None:
            v["sip_term_status"] = str(self.sip_status)
            v["proto_specific_hangup_cause"] = f"sip:{self.sip_status}"
        v["sip_hangup_disposition"] = self.disposition or "send_bye"
