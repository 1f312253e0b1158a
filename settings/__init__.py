"""All configuration, from the environment (prefix ``DIALER_``) and an optional ``.env`` file.

``get_settings()`` is the one cached accessor; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GATEWAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_ESL_PASSWORD = "ClueCon"  # noqa: S105 - FreeSWITCH's well-known default, refused off loopback


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIALER_", env_file=".env", env_nested_delimiter="__", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    freeswitch: list[FreeSwitchNode] = Field(default_factory=lambda: [FreeSwitchNode()])

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
    reaper_interval_seconds: float = Field(5.0, gt=0)
    worker_concurrency: int = Field(500, ge=1, le=10000)
    worker_drain_timeout: float = Field(20.0, ge=0, description="after SIGTERM, calls get this long to finish")
    worker_heartbeat_grace: float = Field(60.0, ge=1, description="a dead worker's jobs count as abandoned after this")

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
    api_tokens: list[SecretStr] = Field(default_factory=list, description="bearer tokens; JSON list in the env")

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

    # Simulator (`dialer sim`)
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(8021, ge=0, le=65535)
    sim_password: SecretStr = SecretStr(DEFAULT_ESL_PASSWORD)

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
