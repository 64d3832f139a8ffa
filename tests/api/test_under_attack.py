"""What an attacker or a misconfigured client throws at /octoperf/: no token leaks, JSON always, no 500."""

import io
import json
import logging
import runpy
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import Client
from gunicorn.config import Config

from tests.conftest import TOKEN

pytestmark = pytest.mark.django_db

JSON_UTF8 = "application/json; charset=utf-8"

# A trailing slash in the base URL, typos, and the bare base URL: none reaches a contract view.
MISTYPED = [
    f"/octoperf/{TOKEN}//instances",
    f"/octoperf/{TOKEN}//instances/i-00000000000000000/state",
    f"/octoperf/{TOKEN}/instance/i-00000000000000000/state",
    f"/octoperf/{TOKEN}/static-ip/allocate",
    f"/octoperf/{TOKEN}",
    f"/octoperf/{TOKEN}/",
]


@pytest.fixture
def all_logs():
    """Every log line, formatted and filtered as settings.LOGGING's console handler does."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for name in settings.LOGGING["handlers"]["console"]["filters"]:
        config = dict(settings.LOGGING["filters"][name])
        handler.addFilter(import_string(config.pop("()"))(**config))
    loggers = [logging.getLogger(), logging.getLogger("django")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", MISTYPED)
def test_a_mistyped_base_url_never_shows_the_token(path, method, all_logs):
    response = Client().generic(method, path, "region=fsn1", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 404
    assert response["Content-Type"] == JSON_UTF8
    assert response.json()["error"]["code"] == "not_found"
    assert TOKEN not in response.content.decode()
    message = response.json()["error"]["message"]
    assert "i-00000000000000000" not in message and "static-ip/" not in message  # the path is never echoed
    assert "Not Found" in all_logs.getvalue()
    assert TOKEN not in all_logs.getvalue()


@pytest.mark.parametrize("path", MISTYPED)
def test_the_access_log_masks_the_token_of_a_mistyped_base_url(path):
    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))

    class Response:
        status = "404 Not Found"
        response_length = 0
        headers = []
        sent = 0

    class Request:
        headers = []

    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    logger = conf["logger_class"](Config())
    atoms = logger.atoms(Response(), Request(), environ, timedelta(seconds=0.01))

    assert TOKEN not in atoms["r"]
    assert TOKEN not in atoms["U"]
    assert "/octoperf/***" in atoms["r"]


# What Django itself routes elsewhere or refuses, and logs ("Not Found: <path>"): doubled slashes,
# capitals, percent-encoding, the token where an id goes.
OTHER_SHAPES = [
    f"/octoperf//{TOKEN}/instances",
    f"/octoperf///{TOKEN}//instances/i-0/state",
    f"/OCTOPERF/{TOKEN}/instances",
    f"/Octoperf/{TOKEN}/static-ips/allocate",
    f"/octoperf%2F{TOKEN}/instances",
    f"/octoperf/instances/{TOKEN}/state",
    f"/octoperf/{TOKEN}/typo/x",
]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PROPFIND"])
@pytest.mark.parametrize("path", OTHER_SHAPES)
def test_no_path_shape_puts_the_token_in_djangos_lines_or_answer(path, method, all_logs):
    response = Client().generic(method, path, "region=fsn1", content_type="application/x-www-form-urlencoded")

    assert 400 <= response.status_code < 500
    assert TOKEN not in response.content.decode()
    assert TOKEN not in all_logs.getvalue()


def test_every_segment_that_may_be_a_token_is_masked_in_any_case_and_encoding():
    from octoprovider.core.logmask import mask_path

    assert mask_path(f"Not Found: /octoperf//{TOKEN}/instances") == "Not Found: /octoperf//***/instances"
    assert mask_path(f'"GET /OCTOPERF/{TOKEN}/instances HTTP/1.1"') == '"GET /OCTOPERF/***/instances HTTP/1.1"'
    assert mask_path(f"/%6Fctoperf%2F{TOKEN}/instances?x=1") == "/%6Fctoperf%2F***/instances?x=1"
    assert mask_path(f"'GET /octoperf/{TOKEN}\\x01/instances'") == "'GET /octoperf/***/instances'"
    assert mask_path(f"/octoperf/{TOKEN}/typo/instances/i-1") == "/octoperf/***/***/instances/i-1"


def test_contract_words_and_the_openapi_document_are_not_masked():
    from octoprovider.core.logmask import mask_path

    assert mask_path("GET /octoperf/instances/i-1/state") == "GET /octoperf/instances/i-1/state"
    assert mask_path("/octoperf/static-ips/allocate?region=fsn1") == "/octoperf/static-ips/allocate?region=fsn1"
    assert mask_path("/octoperf/openapi.json") == "/octoperf/openapi.json"
    assert mask_path(f'"POST /octoperf/{TOKEN} HTTP/1.1"') == '"POST /octoperf/*** HTTP/1.1"'
    assert mask_path(f"Not Found: /octoperf/{TOKEN}") == "Not Found: /octoperf/***"


# --- JSON, never HTML nor 500 -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_write_to_an_unknown_contract_path_is_a_json_404_not_a_csrf_page(method, all_logs):
    client = Client(enforce_csrf_checks=True)

    response = client.generic(
        method, f"/octoperf/{TOKEN}/volumes", "a=b", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 404
    assert response["Content-Type"] == JSON_UTF8
    assert response.json()["error"]["code"] == "not_found"
    assert "CSRF" not in all_logs.getvalue()


def test_a_body_over_the_size_limit_is_a_json_413(octoperf):
    body = "userData=" + "x" * (3 * 1024 * 1024) + "&region=fsn1&type=SMALL"

    response = octoperf.client.post(
        f"{octoperf.base}/instances", body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 413
    assert response["Content-Type"] == JSON_UTF8
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_json_body_over_the_size_limit_is_a_json_413(octoperf):
    body = json.dumps({"userData": "x" * (3 * 1024 * 1024), "region": "fsn1", "type": "SMALL"})

    response = octoperf.client.post(f"{octoperf.base}/instances", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_over_a_thousand_form_fields_is_a_json_400(octoperf):
    body = "&".join(f"f{n}=1" for n in range(1500)) + "&region=fsn1&type=SMALL&userData=x"

    response = octoperf.client.post(
        f"{octoperf.base}/instances", body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == JSON_UTF8
    assert response.json()["error"]["code"] == "too_many_fields"


def test_deeply_nested_json_is_a_json_400(octoperf):
    body = '{"region": ' + "[" * 100_000 + "]" * 100_000 + "}"

    response = octoperf.client.put(f"{octoperf.base}/static-ips/associate", body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == JSON_UTF8
    assert response.json()["error"]["code"] == "invalid_input"


def test_hetzner_errors_reach_octoperf_without_hetzner_ids(octoperf, sandbox, running):
    from instances.models import Instance

    server_id = str(Instance.objects.get(pk=running).hetzner_id)
    for code, status in [("unavailable", 503), ("forbidden", 403), ("conflict", 409), ("invalid_input", 400)]:
        sandbox.inject_fault("POST", r"/servers/\d+/actions/reboot", code=code, status=status, times=3)

        response = octoperf.reboot(running)

        assert response.status_code >= 400, code
        assert server_id not in response.content.decode(), code


# --- the database goes away --------------------------------------------------------------------------


def database_down(error=OperationalError):
    def fail(execute, sql, params, many, context):
        raise error("server closed the connection unexpectedly")

    return connection.execute_wrapper(fail)


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_octoperf_gets_503_with_retry_after_while_the_database_is_down(octoperf, error):
    instance_id = octoperf.create()

    with database_down(error):
        state = octoperf.call("GET", f"/instances/{instance_id}/state")
        created = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    for response in (state, created):
        assert response.status_code == 503
        assert response["Retry-After"] == "10"
        assert response.json()["error"]["code"] == "database_unavailable"
    assert octoperf.state(instance_id) == "pending"  # and all is well once it is back


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_readyz_reports_the_database_down(error):
    with database_down(error):
        response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    assert response.json()["checks"]["database"] == f"unreachable ({error.__name__})"
