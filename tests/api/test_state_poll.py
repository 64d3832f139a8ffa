"""A successful state poll skips DRF's request machinery, and OctoPerf cannot tell: same token check, same JSON."""

import gc

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory
from rest_framework.views import APIView

from octoprovider.contract.models import ApiToken
from octoprovider.contract.tokens import api_token_create
from octoprovider.operations.models import AuditEvent
from tests.conftest import TOKEN, OctoPerf

pytestmark = pytest.mark.django_db

JSON_UTF8 = "application/json; charset=utf-8"


@pytest.fixture
def drf_requests(monkeypatch):
    """Count the requests that went through DRF's machinery."""
    seen = []
    initialize_request = APIView.initialize_request

    def counted(self, request, *args, **kwargs):
        seen.append(request.path)
        return initialize_request(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initialize_request", counted)
    return seen


@pytest.mark.parametrize("how", ["path", "bearer"])
def test_a_successful_poll_is_answered_without_drf_in_the_same_json(octoperf, drf_requests, how):
    instance_id = octoperf.create()
    drf_requests.clear()
    client, extra = (
        (octoperf, {}) if how == "path" else (OctoPerf(base="/octoperf"), {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})
    )

    response = client.call(
        "GET", f"/instances/{instance_id}/state", query={"region": "fsn1", "zone": "default"}, **extra
    )

    assert drf_requests == []
    assert response.status_code == 200
    assert response.content == b'{"value":"pending"}'
    assert response["Content-Type"] == JSON_UTF8
    assert response["Allow"] == "GET, HEAD, OPTIONS"


def test_a_token_made_in_the_admin_polls_too_and_its_use_is_recorded(octoperf, drf_requests):
    instance_id = octoperf.create()
    _, secret = api_token_create(name="workspace-a")
    drf_requests.clear()

    assert OctoPerf(base=f"/octoperf/{secret}").state(instance_id) == "pending"
    assert drf_requests == []
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.parametrize(
    ("base", "path", "status", "code"),
    [
        ("/octoperf", "/instances/{id}/state", 401, "unauthorized"),
        ("/octoperf/wrong-token", "/instances/{id}/state", 401, "unauthorized"),
        (f"/octoperf/{TOKEN}", "/instances/i-00000000000000000/state", 404, "not_found"),
    ],
)
def test_a_failed_poll_goes_the_one_error_path_and_is_audited(octoperf, drf_requests, base, path, status, code):
    instance_id = octoperf.create()
    drf_requests.clear()

    response = OctoPerf(base=base).call("GET", path.format(id=instance_id))

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert len(drf_requests) == 1
    assert AuditEvent.objects.filter(method="GET", route="instance-state", outcome=code).count() == 1


def test_only_get_takes_the_short_way(octoperf, drf_requests):
    instance_id = octoperf.create()
    drf_requests.clear()

    head = octoperf.call("HEAD", f"/instances/{instance_id}/state")
    options = octoperf.call("OPTIONS", f"/instances/{instance_id}/state")

    assert (head.status_code, options.status_code) == (200, 200)
    assert len(drf_requests) == 2


@pytest.mark.django_db(transaction=True)
def test_a_poll_leaves_no_reference_cycle_for_the_garbage_collector(octoperf):
    """A poll's request, view and answer are freed when it ends; a cycle would wait for the collector.

    Django's View.setup stores `self.head = self.get` on every view it makes, a cycle holding the
    request and all it refers to; at thousands of polls a second the collector's passes then stall
    every thread of the worker. Called as gunicorn calls it: Django's test client makes cycles of its own.
    Outside a test transaction, as in production: the request signals close a connection left in one.
    """
    instance_id = octoperf.create()
    application = WSGIHandler()
    environ = (
        RequestFactory()
        .get(
            f"/octoperf/{TOKEN}/instances/{instance_id}/state",
            {"region": "fsn1"},
            HTTP_ACCEPT="application/json",
        )
        .environ
    )

    def poll():
        answered = []
        body = application(dict(environ), lambda status, headers, exc_info=None: answered.append(status))
        content = b"".join(body)
        body.close()
        return answered, content

    assert poll() == (["200 OK"], b'{"value":"pending"}')  # warm: the first poll loads what polls share
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            poll()
        assert gc.collect() == 0
    finally:
        gc.enable()
