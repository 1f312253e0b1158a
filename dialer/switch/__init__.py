"""The one gevent module that owns sockets to FreeSWITCH: ``Switch`` (per node) over ``Link`` (per TCP connection)."""

from .link import Link
from .switch import GAP, BackgroundJob, CallQueue, Gap, Switch, SwitchStats

__all__ = ["GAP", "BackgroundJob", "CallQueue", "Gap", "Link", "Switch", "SwitchStats"]
