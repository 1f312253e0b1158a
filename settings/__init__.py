"""All configuration, from the environment (prefix ``DIALER_``) and an optional ``.env`` file.

``get_settings()`` is the one cached accessor; nothing else reads the environment. A bad value raises
:class:`InvalidSettings`, whose message names each variable (``DIALER_...``) and the reason, never the
value (it may be a password); the ``dialer`` command prints it and exits with status 2.
``masked(settings)`` is what ``dialer settings`` shows: every secret replaced by ``****``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

GATEWAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_ESL_PASSWORD = "ClueCon"  # noqa: S105 - FreeSWITCH's well-known default, refused off loopback
ENV_PREFIX = "DIALER_"
MASK = "****"
REDIS_SCHEMES = ("redis", "rediss", "unix")


class InvalidSettings(ValueError):
    """A setting is missing or malformed; the message names each ``DIALER_*`` variable and why."""


class FreeSwitchNode(BaseModel):
    """One FreeSWITCH to drive over its Event Socket."""

    name: str = Field("fs1", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    host: str = "127.0.0.1"
    port: int = Field(8021, ge=1, le=65535)
    password: SecretStr = SecretStr(DEFAULT_ESL_PASSWORD)

    @model_validator(mode="after")
    def _default_password_only_on_loopback(self) -> FreeSwitchNode:
        if self.password.get_secret_value() == DEFAULT_ESL_PASSWORD and not _is_loopback(self.host):
            raise ValueError(
                f"node {self.name}: the default ESL password ClueCon is refused for non-loopback host {self.host}; "
                "set a password in event_socket.conf.xml and in DIALER_FREESWITCH"
            )
        return self


class GatewayLimit(BaseModel):
    """Pacing limits of one gateway (``DIALER_GATEWAY_LIMITS='{"pstn": {"cps": 20, "max_concurrent": 100}}'``)."""

    model_config = ConfigDict(extra="forbid")

    cps: float | None = Field(None, gt=0, le=10000, description="originates per second through this gateway")
    max_concurrent: int | None = Field(None, ge=1, le=1_000_000, description="calls at once on this gateway")


class TenantToken(BaseModel):
    """An API token that belongs to one tenant: it sees and changes only that tenant's campaigns."""

    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    token: SecretStr


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_nested_delimiter="__", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="redis://[:password@]host:port/db, rediss://, unix://"
    )
    redis_timeout: float = Field(5.0, gt=0, le=60, description="seconds any one Redis command may take")
    freeswitch: list[FreeSwitchNode] = Field(default_factory=lambda: [FreeSwitchNode()])

    # Logs of every process: key=value lines or one JSON object a line
    log_format: Literal["kv", "json"] = "kv"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # ESL connection behaviour
    esl_connect_timeout: float = Field(5.0, gt=0)
    esl_command_timeout: float = Field(5.0, gt=0)
    esl_reconnect_min: float = Field(0.2, gt=0)
    esl_reconnect_max: float = Field(10.0, gt=0)

    # Calls
    default_gateway: str = Field("pstn", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    default_caller_id: str = Field("+15550000000", pattern=r"^\+?[0-9]{3,15}$")
    agent_domain: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
    agent_wait_seconds: float = Field(2.0, gt=0, le=60, description="answered customer waits this long for an agent")
    agent_ring_timeout: int = Field(15, ge=1, le=120)
    agent_max_missed: int = Field(3, ge=0, le=100, description="missed calls in a row that pause an agent (0: never)")
    agent_reserve_timeout: float = Field(
        30.0, gt=0, le=3600, description="progressive/preview: a call waits this long for a free agent, or is not made"
    )
    wrap_up_seconds: float = Field(5.0, ge=0, le=3600)
    hold_music: str | None = Field("local_stream://moh", pattern=r"^[A-Za-z0-9_.:/@+#*~-]{1,256}$")
    abandon_message: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:/@+#*~-]{1,256}$")
    call_lease_seconds: float = Field(30.0, ge=3, description="a dead worker's calls are adopted after this")
    call_quiet_check_seconds: float = Field(
        30.0, gt=0, le=3600, description="a call that heard nothing this long asks the switch if its leg still exists"
    )
    reaper_interval_seconds: float = Field(5.0, gt=0)
    worker_concurrency: int = Field(500, ge=1, le=10000)
    worker_drain_timeout: float = Field(20.0, ge=0, description="after SIGTERM, calls get this long to finish")
    worker_heartbeat_grace: float = Field(60.0, ge=1, description="a dead worker's jobs count as abandoned after this")
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="Prometheus /metrics of a worker (0: off; one port per worker process)"
    )
    metrics_host: str = Field("127.0.0.1", description="address the workers' /metrics listen on")

    # Campaigns: intake, compliance, dispatch (`dialer scheduler`)
    default_region: str = Field("US", pattern=r"^[A-Z]{2}$", description="for numbers written without +")
    default_timezone: str = Field("UTC", description="for numbers whose time zone is unknown")
    scheduler_interval_seconds: float = Field(0.2, gt=0, le=60)
    scheduler_stale_seconds: float = Field(30.0, gt=0, description="queued calls older than this are checked")
    campaign_max_outstanding: int = Field(
        100, ge=1, description="calls queued or in progress per campaign (at most 2 x max_concurrent)"
    )

    # HTTP API (`dialer api`)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=0, le=65535)
    api_tokens: list[SecretStr | TenantToken] = Field(
        default_factory=list,
        description='bearer tokens, a JSON list: "token" (an operator: every campaign) or '
        '{"tenant": "acme", "token": "..."} (only that tenant\'s campaigns)',
    )

    # rq-dashboard (`dialer dashboard`): HTTP basic auth, refused to start without a password
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(9181, ge=0, le=65535)
    dashboard_username: str = Field("admin", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    dashboard_password: SecretStr | None = None

    # Pacing (dialer.pacing): CPS limits hold over any one-second window, across all workers
    global_cps: float | None = Field(None, gt=0, le=10000, description="originates per second, all workers together")
    gateway_limits: dict[str, GatewayLimit] = Field(default_factory=dict)
    pacing_margin: float = Field(
        0.03, ge=0, le=0.5, description="share of each second held back for timing jitter (rate = limit/(1+margin))"
    )
    pacing_wait_timeout: float = Field(60.0, gt=0, le=3600, description="a call waits this long for a token")
    gateway_failure_threshold: int = Field(3, ge=1, le=1000, description="network failures that back a gateway off")
    gateway_failure_window: float = Field(30.0, gt=0, le=86400, description="... within this many seconds")
    gateway_backoff_seconds: float = Field(30.0, gt=0, le=86400, description="how long a gateway is avoided")

    # Webhooks (`dialer webhooks`, docs/webhooks.md): delivery of the events in the dialer:webhooks stream
    webhook_concurrency: int = Field(16, ge=1, le=1000, description="deliveries in flight at once, per process")
    webhook_connect_timeout: float = Field(5.0, gt=0, le=60, description="to connect to a receiver")
    webhook_read_timeout: float = Field(10.0, gt=0, le=300, description="for each read (and write) of a delivery")
    webhook_backoff_base: float = Field(5.0, gt=0, le=3600, description="the first retry waits base/2 .. base s")
    webhook_backoff_cap: float = Field(3600.0, gt=0, le=86400, description="the longest wait between attempts")
    webhook_max_attempts: int = Field(15, ge=1, le=100, description="attempts before an event is dead-lettered")
    webhook_reclaim_idle_seconds: float = Field(
        60.0, gt=0, le=86400, description="an event taken by a sender that died is taken again after this"
    )
    webhook_config_ttl: float = Field(5.0, ge=0, le=300, description="a campaign's URL and secret are cached this long")
    webhook_drain_timeout: float = Field(10.0, ge=0, le=300, description="after SIGTERM, deliveries get this long")

    # Simulator (`dialer sim`)
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(8021, ge=0, le=65535)
    sim_password: SecretStr = SecretStr(DEFAULT_ESL_PASSWORD)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if urlsplit(url).scheme not in REDIS_SCHEMES:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url

    @model_validator(mode="after")
    def _webhook_times(self) -> Settings:
        if self.webhook_backoff_cap < self.webhook_backoff_base:
            raise ValueError(
                f"DIALER_WEBHOOK_BACKOFF_CAP ({self.webhook_backoff_cap}) must be at least "
                f"DIALER_WEBHOOK_BACKOFF_BASE ({self.webhook_backoff_base})"
            )
        longest = self.webhook_connect_timeout + 2 * self.webhook_read_timeout  # connect, send, reply
        if self.webhook_reclaim_idle_seconds <= longest:
            raise ValueError(
                f"DIALER_WEBHOOK_RECLAIM_IDLE_SECONDS ({self.webhook_reclaim_idle_seconds}) must exceed the longest "
                f"delivery, DIALER_WEBHOOK_CONNECT_TIMEOUT + 2 x DIALER_WEBHOOK_READ_TIMEOUT ({longest}): "
                "a slow delivery would be taken over by another sender"
            )
        return self

    @field_validator("gateway_limits")
    @classmethod
    def _gateway_names(cls, limits: dict[str, GatewayLimit]) -> dict[str, GatewayLimit]:
        for name in limits:
            if not GATEWAY_NAME.fullmatch(name):
                raise ValueError(f"gateway name {name!r} is not a valid gateway name (letters, digits, _ . -)")
        return limits

    @field_validator("freeswitch")
    @classmethod
    def _unique_nodes(cls, nodes: list[FreeSwitchNode]) -> list[FreeSwitchNode]:
        if not nodes:
            raise ValueError("at least one FreeSWITCH node is needed")
        names = [node.name for node in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique, got {names}")
        return nodes


def _variable(loc: tuple[int | str, ...]) -> str:
    """``("freeswitch", 0, "port")`` -> ``DIALER_FREESWITCH (0.port)``: the variable, then where inside it."""
    name = f"{ENV_PREFIX}{str(loc[0]).upper()}" if loc else ENV_PREFIX + "*"
    inside = ".".join(str(part) for part in loc[1:])
    return f"{name} ({inside})" if inside else name


def describe(exc: ValidationError | SourceError) -> str:
    """One line per bad setting: the variable and the reason (never the value: it may be a secret)."""
    if isinstance(exc, SourceError):  # the value is not even JSON where a list or object is expected
        match = re.search(r'field "(\w+)"', str(exc))
        field = match.group(1) if match else "?"
        return f"{ENV_PREFIX}{field.upper()}: not valid JSON ({exc.__cause__ or exc})"
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        reason = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{_variable(tuple(error['loc']))}: {reason}")
    return "\n".join(lines)


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (and ``values``); :class:`InvalidSettings` names what is wrong."""
    try:
        return Settings(**values)
    except (ValidationError, SourceError) as exc:
        raise InvalidSettings("bad settings:\n  " + describe(exc).replace("\n", "\n  ")) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _masked_value(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return {name: _masked_value(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list | tuple):
        return [_masked_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked_value(item) for key, item in value.items()}
    return value


def masked(settings: Settings) -> dict[str, Any]:
    """Every setting by its variable name, secrets (passwords, tokens, URL passwords) as ``****``."""
    shown: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = _masked_value(getattr(settings, name))
        if name.endswith("_url") and isinstance(value, str):
            value = _mask_url(value)
        shown[ENV_PREFIX + name.upper()] = value
    return shown


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """``DIALER_*`` variables that name no setting (a typo is otherwise silently ignored)."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    names = (os.environ if environ is None else environ).keys()
    return sorted(n for n in names if n.startswith(ENV_PREFIX) and n.split("__")[0] not in known)
