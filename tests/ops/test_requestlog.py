"""Logs: one line per request and per Hetzner call, tied by a request id; never a token nor userData."""

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import Client
from django.utils.module_loading import import_string

from octoprovider.operations.requestlog import hetzner_endpoint
from tests.conftest import TOKEN, OctoPerf

MARKER = "userdata-marker-7f3a9c-never-log-me"
USER_DATA = f"#!/bin/bash\ndocker run -e AGENT_TOKEN={MARKER} octoperf/docker-agent\n"


def configured(name: str, section: str):
    """Build a formatter or a filter as settings.LOGGING describes it."""
    config = dict(settings.LOGGING[section][name])
    factory = import_string(config.pop("()"))
    return factory(**config)


def capture(formatter: str):
    """Capture every log line, formatted and filtered as the console handler of settings does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured(formatter, "formatters"))
    for name in settings.LOGGING["handlers"]["console"]["filters"]:
        handler.addFilter(configured(name, "filters"))
    loggers = [logging.getLogger(), logging.getLogger("django")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield formatter, stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(params=["plain", "json"])
def log_output(request):
    """Log lines in each LOG_FORMAT: text (the "plain" formatter) and json."""
    yield from capture(request.param)


@pytest.fixture
def json_log():
    yield from capture("json")


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_neither_user_data_nor_the_path_token_ever_reach_the_logs(octoperf, sandbox, settle, log_output):
    log_format, stream = log_output

    instance_id = octoperf.create(user_data=USER_DATA)
    octoperf.state(instance_id)
    octoperf.call("POST", "/instances", form={"userData": USER_DATA, "region": "mars", "type": "SMALL"})
    sandbox.inject_fault("POST", "/servers", code="unavailable", status=503, times=10)
    octoperf.call("POST", "/instances", form={"userData": USER_DATA, "region": "fsn1", "type": "SMALL"})
    octoperf.call("GET", "/instances/i-never-issued/state")
    Client().get(f"/octoperf/{TOKEN}/instances/{instance_id}/nothing-here")
    octoperf.delete(instance_id)
    settle(60, full=True)

    output = stream.getvalue()
    assert "POST instances 200" in output or '"route": "instances"' in output
    assert "Hetzner POST /servers" in output
    assert MARKER not in output
    assert TOKEN not in output
    if log_format == "json":
        assert all(json.loads(line) for line in lines(stream))


def test_a_contract_request_is_one_line_with_method_route_status_duration_and_request_id(octoperf, json_log):
    _, stream = json_log

    response = octoperf.call("GET", "/instances/i-never-issued/state", HTTP_X_REQUEST_ID="req-42")

    request_lines = [json.loads(line) for line in lines(stream) if '"octoprovider.requests"' in line]
    assert len(request_lines) == 1
    assert request_lines[0] | {"duration_ms": 0, "time": ""} == {
        "time": "",
        "level": "INFO",
        "logger": "octoprovider.requests",
        "message": request_lines[0]["message"],
        "request_id": "req-42",
        "method": "GET",
        "route": "instance-state",
        "status": 404,
        "duration_ms": 0,
    }
    assert response["X-Request-ID"] == "req-42"


def test_the_hetzner_calls_of_a_request_log_its_request_id(octoperf, log_output):
    _log_format, stream = log_output

    octoperf.call(
        "POST",
        "/instances",
        form={"userData": "x", "region": "fsn1", "type": "SMALL"},
        HTTP_X_REQUEST_ID="req-create-1",
    )

    hetzner_lines = [line for line in lines(stream) if "Hetzner POST /servers" in line]
    assert hetzner_lines
    assert all("req-create-1" in line for line in hetzner_lines)


def test_every_response_carries_a_generated_request_id(db):
    first = Client().get("/healthz")["X-Request-ID"]
    second = Client().get("/healthz")["X-Request-ID"]

    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize("sent", ["", "x" * 129, "has spaces", "new\nline", "<script>"])
def test_an_insane_client_request_id_is_replaced(octoperf, sent):
    response = OctoPerf().call("GET", "/instances/i-never-issued/state", HTTP_X_REQUEST_ID=sent)

    assert response["X-Request-ID"] != sent
    assert len(response["X-Request-ID"]) == 32


def test_hetzner_paths_are_templated():
    assert (
        hetzner_endpoint("https://api.hetzner.cloud/v1/servers/42/actions/reboot?x=1") == "/servers/{id}/actions/reboot"
    )
    assert hetzner_endpoint("https://api.hetzner.cloud/v1/servers?label_selector=a%3Db") == "/servers"
    assert hetzner_endpoint("https://api.hetzner.cloud/v1/primary_ips/7") == "/primary_ips/{id}"


def test_successful_state_polls_stay_out_of_the_info_log_unless_asked(octoperf, json_log, settings):
    _, stream = json_log
    instance_id = octoperf.create()

    octoperf.state(instance_id)
    settings.LOG_STATE_POLLS = True
    octoperf.state(instance_id)

    polls = [json.loads(line) for line in lines(stream) if '"instance-state"' in line]
    assert [poll["level"] for poll in polls] == ["DEBUG", "INFO"]


def test_request_ids_are_made_without_asking_the_kernel(octoperf, monkeypatch):
    # os.urandom lets go of the GIL; under gunicorn's threads every request then waited to get it back.
    instance_id = octoperf.create()

    def refused(size):
        raise AssertionError("os.urandom called")

    monkeypatch.setattr("os.urandom", refused)
    ids = {octoperf.call("GET", f"/instances/{instance_id}/state")["X-Request-ID"] for _ in range(50)}

    assert len(ids) == 50
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in ids)
