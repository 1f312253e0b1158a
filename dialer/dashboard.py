"""``dialer dashboard``: rq-dashboard on the dialer's Redis, for admins watching queues, jobs and workers.

A thin wrapper rather than the ``rq-dashboard`` command, because with rq-dashboard 0.9 and RQ 3:

- call jobs are stored with RQ's ``JSONSerializer``. ``rq-dashboard --json`` reads queues and jobs with it,
  but lists workers with RQ's default (pickle) serializer, and the workers page then fails (HTTP 500,
  ``DeserializationError``) as soon as a worker is running a call. Here workers are read as
  ``GeventWorker``, whose serializer is JSON;
- its basic auth is optional and compares the password with ``!=``; here a password is required
  (``DIALER_DASHBOARD_PASSWORD``), compared in constant time, for every path (static files too);
- it binds 0.0.0.0 and runs Flask's development server; here the address comes from the settings
  (127.0.0.1 by default) and gevent's WSGI server runs it until SIGTERM/SIGINT.

What the dashboard shows of a call job: its description (``call <campaign>/<contact> attempt <n>``), meta
(campaign, contact, attempt, state) and result (the outcome fields): validated identifiers and the
dialer's own words only (see ``dialer.enqueue``), since rq-dashboard inserts them into pages unescaped.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import sys
from typing import Any


def create_app(redis_url: str, username: str, password: str) -> Any:
    """The rq-dashboard Flask app on ``redis_url``, behind basic auth."""
    from flask import Response, request
    from rq.serializers import JSONSerializer
    from rq_dashboard import web
    from rq_dashboard.cli import make_flask_app

    from dialer.worker import GeventWorker

    web.config.serializer = JSONSerializer
    web.Worker = GeventWorker  # its list of workers: job data read as JSON (see the module docstring)
    app = make_flask_app(None, None, None, url_prefix="")
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    web.setup_rq_connection(app)
    expected = f"{username}:{password}".encode()

    def basic_auth() -> Response | None:
        if hmac.compare_digest(_credentials(request.headers.get("Authorization", "")), expected):
            return None
        return Response("authentication required\n", 401, {"WWW-Authenticate": 'Basic realm="fs-dialer"'})

    app.before_request(basic_auth)
    return app


def _credentials(header: str) -> bytes:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def main(argv: list[str]) -> int:
    from gevent import monkey

    monkey.patch_all()  # before redis, flask and rq import socket: one slow Redis reply must not stall the server
    import logging
    import signal

    import gevent.event
    from gevent.pywsgi import WSGIServer

    from dialer import logs
    from settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dialer dashboard", description="serve rq-dashboard for the call queues")
    parser.add_argument("--host", default=settings.dashboard_host)
    parser.add_argument("--port", type=int, default=settings.dashboard_port, help="0 picks a free port (printed)")
    parser.add_argument("--redis-url", default=settings.redis_url)
    args = parser.parse_args(argv)
    password = settings.dashboard_password.get_secret_value() if settings.dashboard_password else ""
    if not password:
        print("dialer dashboard: set DIALER_DASHBOARD_PASSWORD (and DIALER_DASHBOARD_USERNAME)", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(args.redis_url, settings.dashboard_username, password)
    log = logging.getLogger("dialer.dashboard")
    server = WSGIServer((args.host, args.port), app, log=log, error_log=log)
    try:
        server.start()
    except OSError as exc:
        print(f"dialer dashboard: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"dialer dashboard: listening on http://{args.host}:{server.server_port}", flush=True)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    server.stop(timeout=5)
    return 0
