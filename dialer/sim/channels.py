"""A simulated channel (one leg of a call) and the headers FreeSWITCH puts on its events.

Header names and their order are copied from the recordings (``tests/data/captures``); values are
this leg's own (uuids, numbers, microsecond timestamps). Optional blocks appear when the real switch
adds them: ``Caller-Network-Addr`` once the far end has answered anything, the codec headers once
media is negotiated, ``Caller-Caller-ID-Name`` after the caller id flip at answer, ``Hangup-Cause``
once hung up, the ``Other-Leg-*`` profile while another leg is attached.
"""

from __future__ import annotations

import time
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
    next_steps: list[tuple[str, str]] = field(default_factory=list)  # the rest of an inline dialplan
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
        """What the real switch has set by CHANNEL_CREATE, with the recording's names and order."""
        host = f"127.0.0.1:{sip_port}"
        gateway = self.gateway
        base = {
            "direction": "outbound",
            "is_outbound": "true",
            "uuid": self.uuid,
            "call_uuid": self.call_uuid or self.uuid,
            "session_id": "1",
        }
        if gateway:
            base["sip_gateway_name"] = gateway
        base.update(
            {
                "sip_invite_domain": "127.0.0.1",
                "sip_local_network_addr": "127.0.0.1",
                "sip_profile_name": "gateway" if gateway else "dialer",
                "video_media_flow": "disabled",
                "text_media_flow": "disabled",
                "channel_name": self.channel_name,
                "sip_destination_url": f"sip:{self.number}@{host}",
            }
        )
        # the originate's own {} and [] variables come here, between the basics and the SIP details
        base.update(self.variables)
        base.update(
            {
                "originate_early_media": "false",
                "originate_endpoint": "sofia",
                "rtp_use_codec_string": "PCMU,PCMA",
                "local_media_ip": "127.0.0.1",
                "local_media_port": "16518",
                "advertised_media_ip": "127.0.0.1",
                "audio_media_flow": "sendrecv",
                "rtp_local_sdp_str": LOCAL_SDP,
                "sip_outgoing_contact_uri": f"<sip:gw+{gateway}@127.0.0.1:5080;transport=udp;gw={gateway}>"
                if gateway
                else "<sip:mod_sofia@127.0.0.1:5080>",
                "sip_req_uri": f"{self.number}@{host}",
                "sip_to_host": host,
                "sip_from_host": "127.0.0.1",
                "sofia_profile_name": "dialer",
                "recovery_profile_name": "dialer",
                "sofia_profile_url": "sip:mod_sofia@127.0.0.1:5080",
            }
        )
        self.variables = base

    def set_progress_variables(self, sip_port: int) -> None:
        """The SIP dialog, known from the first provisional response (180)."""
        tag = self.uuid[:8]
        self.variables.update(
            {
                "sip_reply_host": "127.0.0.1",
                "sip_reply_port": str(sip_port),
                "sip_network_ip": "127.0.0.1",
                "sip_network_port": str(sip_port),
                "sip_recover_contact": f"<sip:127.0.0.1:{sip_port};transport=UDP>",
                "sip_full_via": f"SIP/2.0/UDP 127.0.0.1:5080;rport;branch=z9hG4bK{tag}",
                "sip_recover_via": f"SIP/2.0/UDP 127.0.0.1:5080;rport;branch=z9hG4bK{tag}",
                "sip_full_from": f"<sip:{self.cid_number}@127.0.0.1>;tag={tag}",
                "sip_full_to": f"<sip:{self.number}@127.0.0.1:{sip_port}>;tag={tag}SIPpTag01",
                "sip_from_user": self.cid_number,
                "sip_from_uri": f"{self.cid_number}@127.0.0.1",
                "sip_to_user": self.number,
                "sip_to_port": str(sip_port),
                "sip_to_uri": f"{self.number}@127.0.0.1:{sip_port}",
                "sip_contact_params": "transport=UDP",
                "sip_contact_user": "nobody",
                "sip_contact_port": str(sip_port),
                "sip_contact_uri": f"nobody@127.0.0.1:{sip_port}",
                "sip_contact_host": "127.0.0.1",
                "sip_to_tag": f"{tag}SIPpTag01",
                "sip_from_tag": tag,
                "sip_cseq": "123219304",
                "sip_call_id": self.uuid,
            }
        )

    def set_early_media_variables(self) -> None:
        self.variables.update(
            {
                "ep_codec_string": "CORE_PCM_MODULE.PCMU@8000h@20i@64000b",
                "switch_r_sdp": REMOTE_SDP,
                "endpoint_disposition": "EARLY MEDIA",
            }
        )

    def set_media_variables(self) -> None:
        """Negotiated media, in place by CHANNEL_ANSWER."""
        if "ep_codec_string" not in self.variables:
            self.set_early_media_variables()
        self.variables.update(MEDIA_VARIABLES)
        self.variables["rtp_use_ssrc"] = str(int(self.uuid[:8], 16))

    def set_hangup_variables(self, now_us: int) -> None:
        """The CDR variables of CHANNEL_HANGUP_COMPLETE: causes, SIP status, stamps and durations."""
        cause = self.hangup_cause or "NORMAL_CLEARING"
        created, answered = self.created_us, self.answered_us
        v = self.variables
        if self.sip_status is not None and self.sip_status >= 300 and self.disposition == "recv_refuse":
            v["sip_invite_failure_status"] = str(self.sip_status)
            v["sip_invite_failure_phrase"] = SIP_PHRASES.get(self.sip_status, "Error")
        if self.sip_status is not None:
            v["sip_term_status"] = str(self.sip_status)
            v["proto_specific_hangup_cause"] = f"sip:{self.sip_status}"
            v["sip_term_cause"] = str(Q850.get(cause, 16))
        v["hangup_cause"] = cause
        v["hangup_cause_q850"] = str(Q850.get(cause, 16))
        v["digits_dialed"] = "none"
        stamps = (("start", created), ("profile_start", created), ("answer", answered), ("bridge", self.bridged_us),
                  ("progress", self.progress_us), ("progress_media", self.progress_media_us),
                  ("end", now_us))  # fmt: skip
        for name, stamp in stamps:
            if stamp:
                v[f"{name}_stamp"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp // 1_000_000))
        for name, stamp in (*stamps[:4], ("last_hold", 0), ("resurrect", 0), *stamps[4:]):
            v[f"{name}_epoch"] = str(stamp // 1_000_000)
            v[f"{name}_uepoch"] = str(stamp)
        v["hold_accum_seconds"] = v["hold_accum_usec"] = v["hold_accum_ms"] = "0"
        v["last_app"] = v.get("last_app", v.get("current_application", ""))
        v["caller_id"] = f'"{self.cid_name}" <{self.number if self.flipped else self.cid_number}>'
        duration = now_us - created
        bill = now_us - answered if answered else 0
        answer_wait = answered - created if answered else 0
        progress = self.progress_us - created if self.progress_us else 0
        media = self.progress_media_us - created if self.progress_media_us else 0
        for unit, div in (("sec", 1_000_000), ("msec", 1000), ("usec", 1)):
            prefix = {"sec": "", "msec": "m", "usec": "u"}[unit]
            v[f"{prefix}duration"] = str(duration // div)
            v[f"bill{unit}"] = str(bill // div)
            v[f"progress{unit}"] = str(progress // div)
            v[f"answer{unit}"] = str(answer_wait // div)
            v[f"wait{unit}"] = "0"
            v[f"progress_media{unit}"] = str(media // div)
            v[f"flow_bill{unit}"] = str(duration // div)
        v["sip_hangup_disposition"] = self.disposition or "send_bye"
        v.update(RTP_STATS)


LOCAL_SDP = (
    "v=0\r\no=FreeSWITCH 1795529675 1795529676 IN IP4 127.0.0.1\r\ns=FreeSWITCH\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 16518 RTP/AVP 0 8 101 13\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtpmap:13 CN/8000\r\na=ptime:20\r\n"
    "a=sendrecv\r\n"
)
REMOTE_SDP = (
    "v=0\r\no=sipp 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-11,16\r\n"
)
MEDIA_VARIABLES = {
    "remote_video_media_flow": "inactive",
    "remote_text_media_flow": "inactive",
    "remote_audio_media_flow": "sendrecv",
    "rtp_audio_recv_pt": "0",
    "rtp_use_codec_name": "PCMU",
    "rtp_use_codec_rate": "8000",
    "rtp_use_codec_ptime": "20",
    "rtp_use_codec_channels": "1",
    "rtp_last_audio_codec_string": "PCMU@8000h@20i@1c",
    "read_codec": "PCMU",
    "original_read_codec": "PCMU",
    "read_rate": "8000",
    "original_read_rate": "8000",
    "write_codec": "PCMU",
    "write_rate": "8000",
    "dtmf_type": "rfc2833",
    "rtp_use_timer_name": "soft",
    "rtp_use_pt": "0",
    "rtp_use_ssrc": "0",
    "rtp_2833_send_payload": "101",
    "rtp_2833_recv_payload": "101",
    "remote_media_ip": "127.0.0.1",
    "remote_media_port": "6000",
}
RTP_STATS = {
    f"rtp_audio_{name}": value
    for name, value in [
        *((f"in_{n}", "0") for n in ("raw_bytes", "media_bytes", "packet_count", "media_packet_count",
                                     "skip_packet_count", "jitter_packet_count", "dtmf_packet_count",
                                     "cng_packet_count", "flush_packet_count", "largest_jb_size")),
        *((f"in_{n}", "0.00") for n in ("jitter_min_variance", "jitter_max_variance", "jitter_loss_rate",
                                        "jitter_burst_rate", "mean_interval")),
        ("in_flaw_total", "0"), ("in_quality_percentage", "100.00"), ("in_mos", "4.50"),
        *((f"out_{n}", "0") for n in ("raw_bytes", "media_bytes", "packet_count", "media_packet_count",
                                      "skip_packet_count", "dtmf_packet_count", "cng_packet_count")),
        ("rtcp_packet_count", "0"), ("rtcp_octet_count", "0"),
    ]
}  # fmt: skip
SIP_PHRASES = {404: "Not Found", 408: "Request Timeout", 480: "Temporarily Unavailable", 486: "Busy Here",
               487: "Request Terminated", 503: "Service Unavailable", 603: "Decline"}  # fmt: skip
