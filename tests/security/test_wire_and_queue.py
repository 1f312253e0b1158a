"""The ESL password comes from settings and the well-known default is refused off loopback; RQ jobs are JSON,
never pickle; what rq-dashboard shows of a call job (description, meta) holds no caller-controlled text."""

from __future__ import annotations

import json
import re
import zlib

import pytest
import redis
from pydantic import SecretStr, ValidationError
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from dialer.campaigns import Campaigns
from dialer.campaigns.dispatch import Dispatcher
from dialer.enqueue import CALL_QUEUE
from dialer.runtime import Runtime
from dialer.store import Store
from dialer.worker import GeventWorker
from settings import FreeSwitchNode, Settings
from tests.campaigns.helpers import campaign_config
from tests.e2e.conftest import ready_agents

from .hostile import ATTACKS

#: what a description or a meta value may hold: identifiers, numbers, our state names
SHOWN = re.compile(r"[A-Za-z0-9_.:/+ -]*")


@pytest.mark.parametrize("host", ["10.0.0.5", "fs1.example.com", "::2", "0.0.0.0"])
def test_the_default_esl_password_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(ValidationError, match="default ESL password ClueCon is refused"):
        FreeSwitchNode(name="fs", host=host)
    assert FreeSwitchNode(name="fs", host=host, password=SecretStr("a-real-one")).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_default_esl_password_is_accepted_on_loopback(host: str) -> None:
    assert FreeSwitchNode(name="fs", host=host).password.get_secret_value() == "ClueCon"


def test_the_workers_authenticate_with_the_password_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_FREESWITCH", '[{"name": "fs-a", "host": "10.1.2.3", "password": "from-env"}]')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "from-env" not in repr(settings)
    runtime = Runtime(settings, worker_id="w")  # not started: nothing connects
    assert [switch._password for switch in runtime.switches] == ["from-env"]


def test_call_jobs_are_json_and_show_no_caller_controlled_text(redis_client: redis.Redis) -> None:
    campaigns = Campaigns(redis_client)
    free = "".join(a for a in ATTACKS if len(a) < 100)
    campaigns.create(campaign_config("shown", name=free[:200], metadata={"note": free}))
    campaigns.add_contacts("shown", [{"contact_id": "c1", "number": "+12125551234", "note": free}])
    campaigns.start("shown")
    ready_agents(Store(redis_client), "a1")  # progressive campaigns dial for free agents
    assert Dispatcher(redis_client).run_once() == 1
    (job_id,) = Queue(CALL_QUEUE, connection=redis_client, serializer=JSONSerializer).job_ids
    raw = redis_client.hget(f"rq:job:{job_id}", "data")
    assert raw is not None
    func, _, args, _ = json.loads(zlib.decompress(raw))  # JSON, not pickle
    assert func == "jobs.calls.dial"
    assert args[0]["number"] == "+12125551234"
    assert "bridge(" not in json.dumps(args)  # the free text stayed in Redis
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
    assert SHOWN.fullmatch(job.description or ""), job.description
    for key, value in job.meta.items():
        assert SHOWN.fullmatch(f"{key}{value}"), (key, value)
    assert json.loads(redis_client.hget(f"rq:job:{job_id}", "meta") or b"{}") == job.meta  # JSON meta too
    assert GeventWorker(["calls"], connection=redis_client).serializer is JSONSerializer
