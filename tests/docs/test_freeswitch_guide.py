"""The FreeSWITCH guide (docs/freeswitch/) is tested: its XML parses and includes only files that exist, every
``fs_cli -x '...'`` command it tells an operator to run is accepted by the simulator, and its troubleshooting
table is what the dialer really records for each case."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.server import StreamServer

from dialer.callmodel import CallSpec
from dialer.esl import server as wire
from dialer.esl.errors import ConnectionLost
from dialer.runtime import Runtime
from dialer.sim import Agent, Scenario, Simulator
from dialer.switch import Switch
from settings import FreeSwitchNode
from tests.e2e.conftest import Sim, call_fields, ready_agents, settings_for
from tests.sim.client import Client

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "freeswitch"
CONF = GUIDE / "conf"
FS_CLI = re.compile(r"fs_cli\b[^\n`]*?-x '([^']+)'")
DOMAIN = "agents.example.com"


def xml_files() -> list[Path]:
    return sorted(CONF.rglob("*.xml"))


def test_the_sample_configuration_is_complete_and_every_file_parses() -> None:
    files = xml_files()
    assert {f.relative_to(CONF).as_posix() for f in files} >= {
        "freeswitch.xml",
        "vars.xml",
        "autoload_configs/event_socket.conf.xml",
        "autoload_configs/acl.conf.xml",
        "autoload_configs/switch.conf.xml",
        "autoload_configs/local_stream.conf.xml",
        "sip_profiles/agents.xml",
        "sip_profiles/carrier.xml",
        "directory/agents.xml",
    }
    for path in files:
        ET.parse(path)  # raises on malformed XML


def test_every_include_names_files_that_exist() -> None:
    includes = 0
    for path in xml_files():
        for node in ET.parse(path).iter("X-PRE-PROCESS"):
            if node.get("cmd") == "include":
                includes += 1
                assert list(path.parent.glob(node.get("data", ""))), f"{path.name}: {node.get('data')} matches nothing"
    assert includes >= 5


def params(relative: str) -> dict[str, str]:
    root = ET.parse(CONF / relative).getroot()
    return {node.get("name", ""): node.get("value", "") for node in root.iter("param")}


def test_the_settings_the_guide_is_about_are_in_the_files() -> None:
    esl = params("autoload_configs/event_socket.conf.xml")
    assert esl["apply-inbound-acl"] == "dialer_workers"
    assert esl["password"] != "ClueCon"
    acl = ET.parse(CONF / "autoload_configs/acl.conf.xml").getroot()
    assert {node.get("name") for node in acl.iter("list")} >= {"dialer_workers", "carrier"}
    core = params("autoload_configs/switch.conf.xml")
    assert int(core["sessions-per-second"]) >= 2 * 20  # the sample's DIALER_GLOBAL_CPS
    assert int(core["max-sessions"]) >= 2 * 200  # the sample's max_concurrent
    rtp_ports = int(core["rtp-end-port"]) - int(core["rtp-start-port"]) + 1
    assert rtp_ports >= 2 * int(core["max-sessions"])
    assert params("sip_profiles/agents.xml")["wss-binding"] == ":7443"
    carrier = ET.parse(CONF / "sip_profiles/carrier.xml").getroot()
    assert [g.get("name") for g in carrier.iter("gateway")] == ["carrier"]
    directory = params("directory/agents.xml")
    assert "${sofia_contact(*/${dialed_user}@${dialed_domain})}" in directory["dial-string"]
    moh = ET.parse(CONF / "autoload_configs/local_stream.conf.xml").getroot()
    assert [d.get("name") for d in moh.iter("directory")] == ["moh/8000"]


def guide_commands() -> list[str]:
    return [command for page in sorted(GUIDE.glob("*.md")) for command in FS_CLI.findall(page.read_text())]


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    scenario = Scenario(gateways=["carrier"], agents=[Agent(id="1001", answer_ms=50)], domain=DOMAIN)
    sim = Simulator(scenario=scenario).start()
    yield sim
    sim.stop()


def test_every_fs_cli_command_in_the_guide_is_accepted_by_the_simulator(simulator: Simulator) -> None:
    commands = guide_commands()
    assert len(commands) >= 10, commands
    assert {c.split()[0] for c in commands} >= {"status", "sofia", "sofia_contact", "show", "originate", "uuid_kill"}
    with Client(simulator.port) as client:
        assert client.auth().reply_text == "+OK accepted"
        for command in commands:
            reply = client.api(command)  # what `fs_cli -x` sends; an originate returns once answered
            assert not reply.startswith(("-ERR", "-USAGE", "error/")), (command, reply)
            if command.startswith(("originate", "uuid_kill")):
                assert reply.startswith("+OK"), (command, reply)


def troubleshooting_table() -> dict[str, dict[str, str]]:
    lines = (GUIDE / "troubleshooting.md").read_text().splitlines()
    start = lines.index("| case | outcome | hangup_cause | sip_status | log message |")
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        case, outcome, cause, sip, message = (cell.strip() for cell in line.strip("|").split("|"))
        rows[case] = {"outcome": outcome, "hangup_cause": cause, "sip_status": sip, "message": message}
    return rows


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


@pytest.mark.slow
def test_the_troubleshooting_table_is_what_the_dialer_records(
    sim: Sim, make_runtime: Any, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    table = troubleshooting_table()
    assert set(table) == {
        "USER_NOT_REGISTERED",
        "INVALID_GATEWAY",
        "NORMAL_TEMPORARY_FAILURE",
        "ESL password refused",
        "ESL ACL",
    }
    sim.scenario(agents=[{"id": "1001", "registered": False}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    cases = {
        "USER_NOT_REGISTERED": call_fields("doc", "unregistered", "+15551230100"),
        "INVALID_GATEWAY": {**call_fields("doc", "gateway", "+15551230100"), "gateway": "nosuch"},
        "NORMAL_TEMPORARY_FAILURE": call_fields("doc", "carrier503", "+15551230503"),
    }
    for case, fields in cases.items():
        caplog.clear()
        record = runtime.place(CallSpec(**fields))
        row = table[case]
        assert (record["outcome"], record["hangup_cause"], record["sip_status"]) == (
            row["outcome"],
            row["hangup_cause"],
            row["sip_status"],
        ), case
        assert row["message"] in messages(caplog), case
    agent = runtime.store.agent("1001")  # as the page says: still logged in, marked unregistered
    assert (agent["state"], agent["registered"]) == ("available", "0")

    caplog.clear()
    wrong = [FreeSwitchNode(name="sim", host="127.0.0.1", port=sim.port, password="not-the-password")]
    refused = Runtime(settings_for(sim.port, redis_url, freeswitch=wrong, esl_command_timeout=1.0), worker_id="doc-2")
    refused.start()
    try:
        with pytest.raises(ConnectionLost):
            refused.place(CallSpec(**call_fields("doc", "eslpassword", "+15551230100")))
    finally:
        refused.stop()
    record = refused.store.record("doc:eslpassword:1")
    row = table["ESL password refused"]
    assert (record["outcome"], record["hangup_cause"], record["sip_status"]) == (
        row["outcome"],
        row["hangup_cause"],
        row["sip_status"],
    )
    assert row["message"] in messages(caplog)
    assert any("refused the ESL password: -ERR invalid" in str(r.__dict__.get("error")) for r in caplog.records)
    assert not [o for o in sim.originates() if o["number"] == "+15551230100" and "eslpassword" in str(o)]


def test_an_esl_acl_rejection_is_logged_as_the_page_says(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    def reject(sock: Any, address: Any) -> None:  # what FreeSWITCH sends a host its ACL denies
        sock.sendall(wire.rude_rejection())
        sock.close()

    server = StreamServer(("127.0.0.1", 0), reject)
    server.start()
    switch = Switch("127.0.0.1", server.server_port, "any", name="acl", backoff_min=0.05, backoff_max=0.1)
    try:
        switch.start()
        with gevent.Timeout(10):
            while switch.last_error is None:
                gevent.sleep(0.01)
        assert not switch.connected
    finally:
        switch.stop()
        server.stop()
    assert "(ESL ACL)" in str(switch.last_error)
    assert table_message("ESL ACL") in messages(caplog)


def table_message(case: str) -> str:
    return troubleshooting_table()[case]["message"]
