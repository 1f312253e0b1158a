"""API commands (what follows ``api`` / ``bgapi``), answered with FreeSWITCH's exact texts.

``sim ...`` commands exist only here: they let tests and benchmarks in other processes register
agents, inject faults, swap the scenario and read the record over the same ESL connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .channels import Leg
from .dialplan import Reply
from .scenarios import Scenario
from .switch import Switch

if TYPE_CHECKING:
    from .server import Simulator

VERSION = "1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit"
NO_CHANNEL = "-ERR No such channel!\n"


class Api:
    def __init__(self, switch: Switch, simulator: Simulator | None = None) -> None:
        self.switch = switch
        self.simulator = simulator
        self._table: dict[str, Callable[[str], str]] = {
            "status": self._status,
            "show": self._show,
            "uuid_exists": lambda arg: "true" if arg.strip() in self.switch.channels else "false",
            "uuid_kill": self._uuid_kill,
            "uuid_getvar": self._uuid_getvar,
            "uuid_setvar": self._uuid_setvar,
            "uuid_bridge": self._uuid_bridge,
            "uuid_transfer": self._uuid_transfer,
            "uuid_broadcast": self._uuid_broadcast,
            "sched_hangup": self._sched_hangup,
            "hupall": self._hupall,
            "sofia_contact": self._sofia_contact,
            "sofia": self._sofia,
            "version": lambda arg: f"FreeSWITCH Version {VERSION} (1.10.12-release 64bit)\n",
            "sim": self._sim,
        }

    def execute(self, line: str, reply: Reply, job_uuid: str | None = None) -> None:
        """Run one API command; ``reply`` gets the response body (at once, or later for originate)."""
        command, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        if command == "originate":
            self.switch.originate(argument, reply, job_uuid)
            return
        handler = self._table.get(command)
        if handler is None:
            body = f"-ERR {command} Command not found!\n"
        else:
            try:
                body = handler(argument)
            except Exception as exc:  # a bad argument must not kill the connection
                body = f"-ERR {exc}\n"
        self.switch.fire_api(command, argument)
        reply(body)

    # ------------------------------------------------------------------ channel commands

    def _leg(self, argument: str) -> tuple[Leg | None, list[str]]:
        words = argument.split()
        if not words:
            return None, []
        return self.switch.channels.get(words[0]), words[1:]

    def _uuid_kill(self, argument: str) -> str:
        leg, rest = self._leg(argument)
        if leg is None:
            return NO_CHANNEL
        self.switch.hangup(leg, rest[0] if rest else "NORMAL_CLEARING")
        return "+OK\n"

    def _uuid_getvar(self, argument: str) -> str:
        leg, rest = self._leg(argument)
        if leg is None:
            return NO_CHANNEL
        if not rest:
            return "-USAGE: <uuid> <var>\n"
        return leg.variables.get(rest[0], "_undef_")

    def _uuid_setvar(self, argument: str) -> str:
        leg, rest = self._leg(argument)
        if leg is None:
            return NO_CHANNEL
        if not rest:
            return "-USAGE: <uuid> <var> [value]\n"
        if len(rest) > 1:
            leg.variables[rest[0]] = " ".join(rest[1:])
        else:
            leg.variables.pop(rest[0], None)
        return "+OK\n"

    def _uuid_bridge(self, argument: str) -> str:
        words = argument.split()
        if len(words) != 2:
            return "-USAGE: <uuid> <other_uuid>\n"
        return self.switch.uuid_bridge(words[0], words[1])

    def _uuid_transfer(self, argument: str) -> str:
        words = [w for w in argument.split() if w not in ("-bleg", "-both")]
        if len(words) < 2:
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        dialplan = words[2] if len(words) > 2 else "XML"
        return self.switch.uuid_transfer(words[0], words[1], dialplan)

    def _uuid_broadcast(self, argument: str) -> str:
        leg, rest = self._leg(argument)
        if leg is None:
            return NO_CHANNEL
        if not rest:
            return "-USAGE: <uuid> <path> [aleg|bleg|both]\n"
        return "+OK Message sent\n"

    def _sched_hangup(self, argument: str) -> str:
        words = argument.split()
        if len(words) < 2:
            return "-USAGE: [+]<time> <uuid> [<cause>]\n"
        when, uuid = words[0], words[1]
        cause = words[2] if len(words) > 2 else "ALLOTTED_TIMEOUT"
        seconds = float(when[1:]) if when.startswith("+") else float(when) - time.time()
        if not self.switch.sched_hangup(seconds, uuid, cause):
            return NO_CHANNEL
        return "+OK\n"

    def _hupall(self, argument: str) -> str:
        cause = argument.split()[0] if argument else "MANAGER_REQUEST"
        self.switch.hupall(cause)
        return f"+OK hangup all channels with cause {cause}\n"

    # ------------------------------------------------------------------ reports

    def _status(self, argument: str) -> str:
        sw = self.switch
        up = time.time() - sw.started
        days, rest = divmod(up, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        millis = (seconds - int(seconds)) * 1000
        limits = sw.scenario.limits
        return (
            f"UP 0 years, {int(days)} days, {int(hours)} hours, {int(minutes)} minutes, {int(seconds)} seconds, "
            f"{int(millis)} milliseconds, {int((millis - int(millis)) * 1000)} microseconds\n"
            f"FreeSWITCH (Version {VERSION}) is ready\n"
            f"{sw.sessions_since_startup} session(s) since startup\n"
            f"{len(sw.channels)} session(s) - peak {sw.peak_sessions}, last 5min {sw.peak_sessions} \n"
            f"0 session(s) per Sec out of max {limits.sessions_per_second}, peak 0, last 5min 0 \n"
            f"{limits.max_sessions} session(s) max\n"
            "min idle cpu 0.00/99.00\n"
            "Current Stack Size/Max 240K/240K\n"
        )

    def _show(self, argument: str) -> str:
        words = argument.split()
        what = words[0] if words else ""
        as_json = words[-2:] == ["as", "json"]
        if what == "channels":
            rows = [_channel_row(leg, self.switch.hostname) for leg in self.switch.channels.values()]
        elif what == "calls":
            rows = self._call_rows()
        elif what == "registrations":
            rows = [_registration_row(agent_id, self.switch) for agent_id, state in self.switch.agents.items()
                    if state.registered]  # fmt: skip
        else:
            return "-USAGE: show channels|calls|registrations [as json]\n"
        if as_json:
            if not rows:
                return '{"row_count": 0}\n'
            return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
        if not rows:
            return "\n0 total.\n"
        names = list(rows[0])
        lines = [",".join(names)] + [",".join(str(row[n]) for n in names) for row in rows]
        return "\n".join(lines) + f"\n\n{len(rows)} total.\n"

    def _call_rows(self) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        seen: set[str] = set()
        hostname = self.switch.hostname
        for leg in self.switch.channels.values():
            if leg.uuid in seen:
                continue
            seen.add(leg.uuid)
            peer = leg.bridged
            if peer is not None and leg.other_type == "originator":
                continue  # listed with its A leg
            channel = _channel_row(leg, hostname)
            row = {key: channel[key] for key in _CALL_FIELDS}
            if peer is not None:
                seen.add(peer.uuid)
                for key, value in _channel_row(peer, hostname).items():
                    if key in _B_FIELDS:
                        row["b_" + key] = value
                row["call_created_epoch"] = str(leg.bridged_us // 1_000_000)
            rows.append(row)
        return rows

    def _sofia_contact(self, argument: str) -> str:
        target = argument.strip().split("/")[-1]
        return self.switch.contact(target.split("@")[0])

    def _sofia(self, argument: str) -> str:
        words = argument.split()
        if words[:2] == ["status", "gateway"] and len(words) > 2:
            if words[2] not in self.switch.gateways:
                return "Invalid Gateway!\n"
            return f"Name    \t{words[2]}\nProfile \tdialer\nState   \tNOREG\nStatus  \tUP\n"
        if words[:1] == ["status"]:
            data = "sip:dialer@127.0.0.1"
            lines = [f"{'dialer::' + gw:>26}\tgateway\t{data:>42}\tNOREG" for gw in sorted(self.switch.gateways)]
            rule = "=" * 97
            head = f"{'Name':>26}\t   Type\t{'Data':>42}\tState"
            profile = f"{'dialer':>26}\tprofile\t{'sip:mod_sofia@127.0.0.1:5080':>42}\tRUNNING (0)"
            return "\n".join([head, rule, profile, *lines, rule, "1 profile 0 aliases", ""])
        return "-ERR Usage: sofia status [gateway <name>]\n"

    # ------------------------------------------------------------------ the simulator's own commands

    def _sim(self, argument: str) -> str:
        words = argument.split(" ", 1)
        verb, rest = words[0], (words[1] if len(words) > 1 else "").strip()
        sw = self.switch
        if verb == "register" and rest:
            for agent_id in rest.split():
                sw.register(agent_id)
            return "+OK\n"
        if verb in ("unregister", "expire") and rest:
            for agent_id in rest.split():
                sw.unregister(agent_id, expired=verb == "expire")
            return "+OK\n"
        if verb == "originates":
            return sw.record.as_json()
        if verb == "stats":
            stats: dict[str, Any] = sw.stats()
            if self.simulator is not None:
                stats.update(self.simulator.connection_stats())
            return json.dumps(stats)
        if verb == "clear":
            sw.record.clear()
            return "+OK\n"
        if verb == "scenario" and rest:
            try:
                sw.load(Scenario.model_validate_json(rest))
            except ValidationError as exc:
                return "-ERR invalid scenario: " + " ".join(str(exc).split()) + "\n"
            return "+OK\n"
        if verb == "fault" and self.simulator is not None:
            return self.simulator.fault(rest.split())
        if verb == "restart" and self.simulator is not None:
            seconds = float(rest) if rest else 0.0
            self.simulator.restart(seconds)
            return "+OK\n"
        return "-USAGE: sim register|unregister|expire <id>... | originates | stats | clear | scenario <json> | " \
               "fault drop|delay <ms>|lose <rate>|none | restart [seconds]\n"  # fmt: skip


# ``show calls`` columns of the A leg, in FreeSWITCH's order (hostname moves after call_uuid)
_CALL_FIELDS = ["uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num", "ip_addr",
                "dest", "presence_id", "presence_data", "accountcode", "callstate", "callee_name", "callee_num",
                "callee_direction", "call_uuid", "hostname", "sent_callee_name", "sent_callee_num"]  # fmt: skip
_B_FIELDS = ["uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num", "ip_addr",
             "dest", "presence_id", "presence_data", "accountcode", "callstate", "callee_name", "callee_num",
             "callee_direction", "sent_callee_name", "sent_callee_num"]  # fmt: skip


def _channel_row(leg: Leg, hostname: str) -> dict[str, str]:
    created = leg.created_us // 1_000_000
    codec = "PCMU" if leg.media else ""
    return {
        "uuid": leg.uuid,
        "direction": "outbound",
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)),
        "created_epoch": str(created),
        "name": leg.channel_name,
        "state": leg.state,
        "cid_name": leg.cid_name,
        "cid_num": leg.number,
        "ip_addr": "",
        "dest": leg.number,
        "application": leg.application,
        "application_data": leg.application_data,
        "dialplan": "",
        "context": "default",
        "read_codec": codec,
        "read_rate": "8000" if codec else "",
        "read_bit_rate": "64000" if codec else "",
        "write_codec": codec,
        "write_rate": "8000" if codec else "",
        "write_bit_rate": "64000" if codec else "",
        "secure": "",
        "hostname": hostname,
        "presence_id": leg.presence_id or "",
        "presence_data": "",
        "accountcode": "",
        "callstate": leg.call_state,
        "callee_name": "",
        "callee_num": leg.cid_number,
        "callee_direction": "SEND" if leg.bridged else "RECV",
        "call_uuid": leg.call_uuid or leg.uuid,
        "sent_callee_name": "",
        "sent_callee_num": "",
        "initial_cid_name": "",
        "initial_cid_num": leg.cid_number,
        "initial_ip_addr": "",
        "initial_dest": leg.number,
        "initial_dialplan": "",
        "initial_context": "default",
    }


def _registration_row(agent_id: str, switch: Switch) -> dict[str, str]:
    domain = switch.scenario.domain
    return {
        "reg_user": agent_id,
        "realm": domain,
        "token": switch.agents[agent_id].call_id,
        "url": switch.contact(agent_id),
        "expires": str(int(time.time()) + 3600),
        "network_ip": "127.0.0.1",
        "network_port": "5071",
        "network_proto": "udp",
        "hostname": switch.hostname,
        "metadata": "",
    }
