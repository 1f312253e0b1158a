"""The FreeSWITCH simulator: mod_event_socket on TCP with scripted callees and agents.

Start it in a gevent program with ``Simulator(port=0).start()`` (``sim.port`` is the bound port) or
from a shell with ``dialer sim [--host H] [--port P] [--password P] [--scenario FILE]``.

Modules: ``server`` (ESL connections, faults), ``switch`` (channels and call flow), ``channels``
(a leg and its event headers), ``bus`` (subscriptions, filters, one serialisation per format),
``api`` (API command texts), ``dialplan`` (dial strings), ``scenarios`` (pydantic rules), ``record``.

Control from another process, over the same ESL connection (commands only the simulator knows)::

    api sim register 1001 [1002 ...]      agent registers: CUSTOM sofia::register
    api sim unregister 1001               CUSTOM sofia::unregister   (``sim expire``: sofia::expire)
    api sim originates                    JSON list: time, uuid, number, endpoint, variables, result,
                                          answered_at, bridge_requested_at, bridged_at, answer_to_bridge_ms
    api sim clear                         forget the record
    api sim stats                         JSON: channels, peak, refused_by_limits, events, connections ...
    api sim scenario <json>               replace the scenario (validated; registered agents are kept)
    api sim fault drop                    close every ESL connection (no disconnect-notice)
    api sim fault delay <ms>              delay every command reply
    api sim fault lose <0..1>             drop that fraction of events, per event and connection
    api sim fault none                    no more delay or loss
    api sim restart [seconds]             channels gone without events, new Core-UUID, connections dropped,
                                          new connections refused for ``seconds``

Decisions where the real switch could not be observed (each is also commented where it is made):
- over ``sessions-per-second`` or ``max-sessions`` the originate fails at once with
  ``-ERR DESTINATION_OUT_OF_ORDER`` and no channel event (switch_core_session_request refuses the
  session; mod_sofia's outgoing_channel reports its default cause);
- simultaneous legs (``,``) are refused with ``-ERR SERVICE_NOT_IMPLEMENTED``; ``|`` failover works;
- ``originate <dial> <extension>`` (no ``&app``) parks, as the simulator has no XML dialplan;
- a failed ``bridge`` hangs the A leg up with the B leg's cause; with ``continue_on_fail=true`` the
  inline dialplan goes on (``bridge:user/1001,park`` parks again), with ``park_after_bridge=true`` it
  parks; an inline dialplan's steps run in order, and the channel hangs up after the last one;
- Event-Sequence keeps counting across ``sim restart`` (monotonic per simulator process).
"""

from .record import OriginateRecord, Record
from .scenarios import Agent, Callee, Limits, Rule, Scenario
from .server import Simulator
from .switch import Switch

__all__ = ["Agent", "Callee", "Limits", "OriginateRecord", "Record", "Rule", "Scenario", "Simulator", "Switch"]
