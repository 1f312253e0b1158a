"""``dialer api``: the HTTP API for campaigns (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every route but ``/health`` needs ``Authorization: Bearer <token>`` with one of the tokens in
``DIALER_API_TOKENS`` (compared in constant time). Tenants: a token given as ``{"tenant": "acme", "token":
"..."}`` sees and changes only the campaigns it created (another tenant's campaign is a 404, as if it did not
exist) and only its own do-not-call lists (named ``acme`` or ``acme-...``); a plain token is an operator's
and sees everything (the global DNC list is an operator's only). Errors are JSON in pydantic's shape,
naming the field:

    {"detail": [{"loc": ["path", "campaign_id"], "msg": "no campaign 'x'", "type": "not_found"}]}

422 for invalid input (pydantic's loc/msg), 401 without a valid token, 404 for an unknown campaign or
contact, 409 for a lifecycle step the campaign's state does not allow. Contact rows are validated one by
one: a bad row is listed in ``rejected`` (row, field, reason) and the rest of the batch is stored.
Handlers are plain functions: FastAPI runs them in its thread pool, so blocking Redis calls are fine.
"""

from __future__ import annotations

import argparse
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from dialer.campaigns import CampaignConfig, CampaignError, CampaignNotFound, Campaigns, CampaignStatus, IntakeResult
from dialer.payload import IDENTIFIER
from settings import Settings, TenantToken, get_settings

CampaignId = Annotated[str, Path(pattern=IDENTIFIER)]
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


def _visible(campaigns: Campaigns, caller: Caller, campaign_id: str) -> None:
    """Another tenant's campaign does not exist for this caller."""
    if caller.tenant is not None and not caller.sees(campaigns.owner(campaign_id)):
        raise CampaignNotFound(f"no campaign {campaign_id!r}")


def _own_list(caller: Caller, name: str, field: str = "list_name") -> None:
    if not caller.may_use_list(name):
        raise CampaignNotFound(f"no do-not-call list {name!r}", field=field)


def create_app(campaigns: Campaigns, tokens: Sequence[ApiToken]) -> FastAPI:
    app = FastAPI(title="fs-dialer", version="0.1.0", description="Campaigns for the FreeSWITCH outbound dialer")
    app.state.check_token = bearer_auth(tokens)

    @app.exception_handler(CampaignError)
    def campaign_error(request: Request, exc: CampaignError) -> JSONResponse:
        where = "path" if exc.field in request.path_params else "body"
        loc = [exc.field] if exc.field == "state" else [where, exc.field]
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

    return app


def app_from_settings(settings: Settings) -> FastAPI:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    return create_app(Campaigns.from_settings(settings, client), api_tokens(settings))


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
    uvicorn.run(app_from_settings(settings), host=args.host, port=args.port, log_level="info")
    return 0
