"""The FreeSWITCH simulator: mod_event_socket on TCP with scripted callees and agents.

Start it in a gevent program with ``Simulator(port=0).start()`` (``sim.port`` is the bound port) or
from a shell with ``dialer sim [--host H] [--port P] [--password P] [--scenario FILE]``.

Modules: ``server`` (ESL connections, faults), ``switch`` (channels and call flow), ``channels``
(a leg and its event headers), ``bus`` (subscriptions, filters, one serialisation per format),
``api`` (API command texts), ``bridging`` (applications, bridges), ``agents`` (the directory),
``dialplan`` (dial strings), ``scenarios`` (pydantic rules), ``record``.

Control commands over ESL (``api sim ...``), scenarios and the deliberate differences from the real
switch are described in ``README.md`` next to this file.
"""

from .record import OriginateRecord, Record
from .scenarios import Agent, Callee, Limits, Rule, Scenario
from .server import Simulator
from .switch import Switch

__all__ = ["Agent", "Callee", "Limits", "OriginateRecord", "Record", "Rule", "Scenario", "Simulator", "Switch"]
