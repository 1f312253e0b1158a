"""``GET /metrics`` on the HTTP API: Prometheus text of the system-wide gauges (``dialer.metrics``).

It asks for the same bearer token as every other route but ``/health``: the series name campaigns'
agents and queue depths, and the API is the one process likely to be reachable from outside. Prometheus
sends the token with ``authorization: {credentials: <token>}`` in the scrape config.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def add_metrics_route(app: FastAPI, registry: CollectorRegistry, auth: Any) -> None:
    """``auth``: the dependency that checks the bearer token (``dialer.http_api`` passes its operator check)."""

    @app.get("/metrics", dependencies=[Depends(auth)], response_class=Response, summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
