"""The FreeSWITCH simulator: mod_event_socket on TCP with scripted callees and agents.

Start it in a gevent program with ``Simulator(port=0).start()`` or from a shell with ``dialer sim``.
"""

from .record import OriginateRecord, Record
from .scenarios import Agent, Callee, Limits, Rule, Scenario
from .server import Simulator
from .switch import Switch

__all__ = ["Agent", "Callee", "Limits", "OriginateRecord", "Record", "Rule", "Scenario", "Simulator", "Switch"]
