"""``dialer api``: the HTTP API for campaigns and agents (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every route but ``/health`` needs ``Authorization: Bearer <token>`` with one of the tokens in
``DIALER_API_TOKENS`` (compared in constant time). Tenants: a token given as ``{"tenant": "acme", "token":
"..."}`` sees and changes only the campaigns it created (another tenant's campaign is a 404, as if it did not
exist) and only its own do-not-call lists (named ``acme`` or ``acme-...``); a plain token is an operator's
and sees everything (the global DNC list is an operator's only). Errors are JSON in pydantic's shape,
naming the field:

    {"detail": [{"loc": ["path", "campaign_id"], "msg": "no campaign 'x'", "type": "not_found"}]}

422 for invalid input (pydantic's loc/msg), 401 without a valid token, 404 for an unknown campaign,
contact or agent, 409 for a step the campaign's or agent's state does not allow. Contact rows are
validated one by one: a bad row is listed in ``rejected`` (row, field, reason) and the rest is stored.
Handlers are plain functions: FastAPI runs them in its thread pool, so blocking Redis calls are fine.
"""

from __future__ import annotations

import argparse
import hmac
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from dialer import logs
from dialer.agents import AgentIn, Agents, AgentView, PauseIn
from dialer.api_metrics import add_metrics_route
from dialer.campaigns import CampaignConfig, CampaignNotFound, Campaigns, CampaignStatus, IntakeResult
from dialer.errors import RequestRefused
from dialer.esl import dialstring
from dialer.metrics import api_registry
from dialer.payload import IDENTIFIER
from settings import Settings, TenantToken, get_settings

CampaignId = Annotated[str, Path(pattern=IDENTIFIER)]
AgentId = Annotated[str, Path(pattern=r"^" + dialstring.USER_ID.pattern.pattern + "$", max_length=64)]
ListName = Annotated[str, Path(pattern=IDENTIFIER)]
MAX_BATCH = 100_000
BEARER = HTTPBearer(auto_error=False, description="one of DIALER_API_TOKENS")


class ContactBatch(BaseModel):
    contacts: list[Any] = Field(max_length=MAX_BATCH, description="rows: contact_id, number, timezone?, metadata")


class NumberBatch(BaseModel):
    numbers: list[str] = Field(max_length=MAX_BATCH)


class CampaignSummary(BaseModel):
    id: str
    state: str


class CampaignView(BaseModel):
    config: dict[str, Any]
    status: CampaignStatus


def _unauthorized(message: str) -> HTTPException:
    detail = [{"loc": ["header", "authorization"], "msg": message, "type": "unauthorized"}]
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to: a tenant, or None for an operator (every campaign)."""

    tenant: str | None = None

    def sees(self, owner: str | None) -> bool:
        return self.tenant is None or owner == self.tenant

    def may_use_list(self, name: str) -> bool:
        return self.tenant is None or name == self.tenant or name.startswith(f"{self.tenant}-")


#: A configured token: the token text, or (tenant, token text).
ApiToken = str | tuple[str, str]


def bearer_auth(tokens: Sequence[ApiToken]) -> Any:
    expected = [
        (Caller(token[0]), token[1].encode()) if isinstance(token, tuple) else (Caller(), token.encode())
        for token in tokens
    ]
    expected = [(caller, secret) for caller, secret in expected if secret]

    def check(credentials: HTTPAuthorizationCredentials | None) -> Caller:
        if credentials is None:
            raise _unauthorized("a bearer token is required")
        given = credentials.credentials.encode()
        # Compare with every token, always: the time taken says nothing about which one nearly matched.
        matches = [caller for caller, secret in expected if hmac.compare_digest(given, secret)]
        if not matches:
            raise _unauthorized("the bearer token is not valid")
        return matches[0]

    return check


def _caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> Caller:
    """The dependency every route but /health has: the app's token check (``create_app`` sets it)."""
    caller: Caller = request.app.state.check_token(credentials)
    return caller


Authorised = Annotated[Caller, Depends(_caller)]


def _lifecycle_route(campaigns: Campaigns, action: str) -> Callable[..., CampaignStatus]:
    step: Callable[[str], CampaignStatus] = getattr(campaigns, action)

    def route(campaign_id: CampaignId, caller: Authorised) -> CampaignStatus:
        _visible(campaigns, caller, campaign_id)
        return step(campaign_id)

    return route


def _operator(caller: Authorised) -> Caller:
    """Agents and metrics are shared by every tenant: their routes take an operator's (plain) token."""
    if caller.tenant is not None:
        message = "this route needs an operator token"
        raise HTTPException(403, detail=[{"loc": ["header", "authorization"], "msg": message, "type": "forbidden"}])
    return caller


def _visible(campaigns: Campaigns, caller: Caller, campaign_id: str) -> None:
    """Another tenant's campaign does not exist for this caller."""
    if caller.tenant is not None and not caller.sees(campaigns.owner(campaign_id)):
        raise CampaignNotFound(f"no campaign {campaign_id!r}")


def _own_list(caller: Caller, name: str, field: str = "list_name") -> None:
    if not caller.may_use_list(name):
        raise CampaignNotFound(f"no do-not-call list {name!r}", field=field)


def create_app(campaigns: Campaigns, tokens: Sequence[ApiToken], agents: Agents | None = None) -> FastAPI:
    app = FastAPI(
        title="fs-dialer", version="0.1.0", description="Campaigns and agents for the FreeSWITCH outbound dialer"
    )
    app.state.check_token = bearer_auth(tokens)

    @app.exception_handler(RequestRefused)
    def refused(request: Request, exc: RequestRefused) -> JSONResponse:
        where = "path" if exc.field in request.path_params else "body"
        loc = [exc.field] if exc.field in ("state", "offer") else [where, exc.field]
        return JSONResponse({"detail": [{"loc": loc, "msg": str(exc), "type": exc.kind}]}, status_code=exc.status)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/campaigns", status_code=201)
    def create(config: CampaignConfig, caller: Authorised) -> dict[str, Any]:
        for name in config.dnc_lists:
            _own_list(caller, name, field="dnc_lists")
        return campaigns.create(config, owner=caller.tenant).public()

    @app.get("/campaigns")
    def list_campaigns(caller: Authorised) -> list[CampaignSummary]:
        listed = campaigns.list_campaigns(owner=caller.tenant)
        return [CampaignSummary(id=campaign, state=state) for campaign, state in listed]

    @app.get("/campaigns/{campaign_id}")
    def show(campaign_id: CampaignId, caller: Authorised) -> CampaignView:
        _visible(campaigns, caller, campaign_id)
        return CampaignView(config=campaigns.get(campaign_id).public(), status=campaigns.status(campaign_id))

    @app.get("/campaigns/{campaign_id}/status")
    def status(campaign_id: CampaignId, caller: Authorised) -> CampaignStatus:
        _visible(campaigns, caller, campaign_id)
        return campaigns.status(campaign_id)

    @app.post("/campaigns/{campaign_id}/contacts")
    def add_contacts(campaign_id: CampaignId, batch: ContactBatch, caller: Authorised) -> IntakeResult:
        _visible(campaigns, caller, campaign_id)
        return campaigns.add_contacts(campaign_id, batch.contacts)

    @app.get("/campaigns/{campaign_id}/contacts/{contact_id}")
    def contact(
        campaign_id: CampaignId, contact_id: Annotated[str, Path(pattern=IDENTIFIER)], caller: Authorised
    ) -> dict[str, Any]:
        _visible(campaigns, caller, campaign_id)
        return campaigns.contact(campaign_id, contact_id)

    for action in ("start", "pause", "resume", "cancel"):
        app.add_api_route(
            f"/campaigns/{{campaign_id}}/{action}",
            _lifecycle_route(campaigns, action),
            methods=["POST"],
            response_model=CampaignStatus,
            name=action,
            summary=f"{action.capitalize()} a campaign",
        )

    @app.post("/dnc/{list_name}/numbers")
    def dnc_add(list_name: ListName, batch: NumberBatch, caller: Authorised) -> IntakeResult:
        _own_list(caller, list_name)
        return campaigns.dnc_add(list_name, batch.numbers)

    @app.get("/dnc/{list_name}/numbers/{number}")
    def dnc_listed(
        list_name: ListName, number: Annotated[str, Path(max_length=40)], caller: Authorised
    ) -> dict[str, bool]:
        _own_list(caller, list_name)
        return {"listed": campaigns.dnc_listed(list_name, number)}

    @app.delete("/dnc/{list_name}/numbers/{number}")
    def dnc_remove(
        list_name: ListName, number: Annotated[str, Path(max_length=40)], caller: Authorised
    ) -> dict[str, int]:
        _own_list(caller, list_name)
        return {"removed": campaigns.dnc_remove(list_name, [number])}

    _agent_routes(app, agents or Agents(campaigns.state.redis), [Depends(_operator)])
    return app


def _agent_routes(app: FastAPI, agents: Agents, auth: list[Any]) -> None:
    @app.get("/agents", dependencies=auth, tags=["agents"])
    def list_agents() -> list[AgentView]:
        return agents.list_agents()

    @app.put("/agents/{agent_id}", dependencies=auth, tags=["agents"], summary="Create or update an agent")
    def put_agent(agent_id: AgentId, agent: AgentIn) -> AgentView:
        return agents.put(agent_id, agent)

    @app.get("/agents/{agent_id}", dependencies=auth, tags=["agents"])
    def get_agent(agent_id: AgentId) -> AgentView:
        return agents.get(agent_id)

    @app.post("/agents/{agent_id}/pause", dependencies=auth, tags=["agents"], summary="Pause an agent")
    def pause(agent_id: AgentId, body: PauseIn | None = None) -> AgentView:
        return agents.act(agent_id, "pause", (body or PauseIn()).reason)

    steps: list[tuple[str, Callable[[str, str], AgentView], str]]
    steps = [(action, agents.act, f"{action.capitalize()} an agent") for action in ("login", "ready", "logout")]
    steps += [(f"offer/{d}", agents.decide, f"Preview: {d} the contact offered") for d in ("accept", "skip")]
    for path, step, summary in steps:
        app.add_api_route(
            f"/agents/{{agent_id}}/{path}",
            _agent_action(step, path.rpartition("/")[2]),
            methods=["POST"],
            dependencies=auth,
            response_model=AgentView,
            tags=["agents"],
            name=path.replace("/", "_"),
            summary=summary,
        )


def _agent_action(step: Callable[[str, str], AgentView], action: str) -> Callable[[str], AgentView]:
    def route(agent_id: AgentId) -> AgentView:
        return step(agent_id, action)

    return route


def app_from_settings(settings: Settings) -> FastAPI:
    timeout = settings.redis_timeout
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    app = create_app(
        Campaigns.from_settings(settings, client), api_tokens(settings), Agents(client, settings.agent_domain)
    )
    add_metrics_route(app, api_registry(client), _operator)
    return app


def api_tokens(settings: Settings) -> list[ApiToken]:
    return [
        (token.tenant, token.token.get_secret_value()) if isinstance(token, TenantToken) else token.get_secret_value()
        for token in settings.api_tokens
    ]


def main(argv: list[str]) -> int:
    import uvicorn

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dialer api", description="serve the HTTP API")
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    args = parser.parse_args(argv)
    if not any(token if isinstance(token, str) else token[1] for token in api_tokens(settings)):
        print('dialer api: set DIALER_API_TOKENS (a JSON list, e.g. ["a-long-random-token"])', flush=True)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    # After a graceful shutdown uvicorn raises the SIGTERM it caught again, under the handler it found at
    # start, so the process would die of it (status -15, which process managers report as a failure). With a
    # no-op handler there, `dialer api` exits 0 after SIGTERM like the other processes.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    # log_config=None: uvicorn's loggers go through the root handler, in DIALER_LOG_FORMAT like every process
    uvicorn.run(app_from_settings(settings), host=args.host, port=args.port, log_config=None)
    return 0
