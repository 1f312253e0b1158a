"""``dialer api``: the HTTP API for campaigns and agents (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every route but ``/health`` needs ``Authorization: Bearer <token>`` with one of the tokens in
``DIALER_API_TOKENS`` (compared in constant time). Errors are JSON in pydantic's shape, naming the field:

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
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from dialer import logs
from dialer.agents import AgentIn, Agents, AgentView, PauseIn
from dialer.api_metrics import add_metrics_route
from dialer.campaigns import CampaignConfig, Campaigns, CampaignStatus, IntakeResult
from dialer.errors import RequestRefused
from dialer.esl import dialstring
from dialer.metrics import api_registry
from dialer.payload import IDENTIFIER
from settings import Settings, get_settings

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


def bearer_auth(tokens: Sequence[str]) -> Any:
    expected = [token.encode() for token in tokens if token]

    def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if credentials is None:
            raise _unauthorized("a bearer token is required")
        given = credentials.credentials.encode()
        # Compare with every token, always: the time taken says nothing about which one nearly matched.
        matches = [hmac.compare_digest(given, token) for token in expected]
        if not any(matches):
            raise _unauthorized("the bearer token is not valid")

    return check


def _lifecycle_route(campaigns: Campaigns, action: str) -> Callable[[str], CampaignStatus]:
    step: Callable[[str], CampaignStatus] = getattr(campaigns, action)

    def route(campaign_id: CampaignId) -> CampaignStatus:
        return step(campaign_id)

    return route


def create_app(campaigns: Campaigns, tokens: Sequence[str], agents: Agents | None = None) -> FastAPI:
    app = FastAPI(
        title="fs-dialer", version="0.1.0", description="Campaigns and agents for the FreeSWITCH outbound dialer"
    )
    auth = [Depends(bearer_auth(tokens))]

    @app.exception_handler(RequestRefused)
    def refused(request: Request, exc: RequestRefused) -> JSONResponse:
        where = "path" if exc.field in request.path_params else "body"
        loc = [exc.field] if exc.field in ("state", "offer") else [where, exc.field]
        return JSONResponse({"detail": [{"loc": loc, "msg": str(exc), "type": exc.kind}]}, status_code=exc.status)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/campaigns", status_code=201, dependencies=auth)
    def create(config: CampaignConfig) -> dict[str, Any]:
        return campaigns.create(config).public()

    @app.get("/campaigns", dependencies=auth)
    def list_campaigns() -> list[CampaignSummary]:
        return [CampaignSummary(id=campaign, state=state) for campaign, state in campaigns.list_campaigns()]

    @app.get("/campaigns/{campaign_id}", dependencies=auth)
    def show(campaign_id: CampaignId) -> CampaignView:
        return CampaignView(config=campaigns.get(campaign_id).public(), status=campaigns.status(campaign_id))

    @app.get("/campaigns/{campaign_id}/status", dependencies=auth)
    def status(campaign_id: CampaignId) -> CampaignStatus:
        return campaigns.status(campaign_id)

    @app.post("/campaigns/{campaign_id}/contacts", dependencies=auth)
    def add_contacts(campaign_id: CampaignId, batch: ContactBatch) -> IntakeResult:
        return campaigns.add_contacts(campaign_id, batch.contacts)

    @app.get("/campaigns/{campaign_id}/contacts/{contact_id}", dependencies=auth)
    def contact(campaign_id: CampaignId, contact_id: Annotated[str, Path(pattern=IDENTIFIER)]) -> dict[str, Any]:
        return campaigns.contact(campaign_id, contact_id)

    for action in ("start", "pause", "resume", "cancel"):
        app.add_api_route(
            f"/campaigns/{{campaign_id}}/{action}",
            _lifecycle_route(campaigns, action),
            methods=["POST"],
            dependencies=auth,
            response_model=CampaignStatus,
            name=action,
            summary=f"{action.capitalize()} a campaign",
        )

    @app.post("/dnc/{list_name}/numbers", dependencies=auth)
    def dnc_add(list_name: ListName, batch: NumberBatch) -> IntakeResult:
        return campaigns.dnc_add(list_name, batch.numbers)

    @app.get("/dnc/{list_name}/numbers/{number}", dependencies=auth)
    def dnc_listed(list_name: ListName, number: Annotated[str, Path(max_length=40)]) -> dict[str, bool]:
        return {"listed": campaigns.dnc_listed(list_name, number)}

    @app.delete("/dnc/{list_name}/numbers/{number}", dependencies=auth)
    def dnc_remove(list_name: ListName, number: Annotated[str, Path(max_length=40)]) -> dict[str, int]:
        return {"removed": campaigns.dnc_remove(list_name, [number])}

    _agent_routes(app, agents or Agents(campaigns.state.redis), auth)
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
    tokens = [token.get_secret_value() for token in settings.api_tokens]
    app = create_app(Campaigns.from_settings(settings, client), tokens, Agents(client, settings.agent_domain))
    add_metrics_route(app, api_registry(client), bearer_auth(tokens))
    return app


def main(argv: list[str]) -> int:
    import uvicorn

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dialer api", description="serve the HTTP API")
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    args = parser.parse_args(argv)
    if not any(token.get_secret_value() for token in settings.api_tokens):
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
