"""Hetzner unreachable: a request that never left did nothing, and says so; one that left may have.

The production client talks to `responses`, which raises what requests raises: a refused connection
and a failed DNS lookup (a ConnectionError around urllib3's NewConnectionError or
NameResolutionError), a connect timeout, and, after the request was sent, a read timeout or a reset.
"""

import pytest
from requests.exceptions import ConnectionError, ConnectTimeout, ReadTimeout
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ProtocolError

from instances.models import Instance
from staticips.models import StaticIP
from tests.services.conftest import API

pytestmark = pytest.mark.django_db


def refused() -> ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return ConnectionError(MaxRetryError(None, f"{API}/servers", reason))


def no_dns_answer() -> ConnectionError:
    reason = NameResolutionError("api.hetzner.cloud", None, OSError("[Errno -3] Temporary failure in name resolution"))
    return ConnectionError(MaxRetryError(None, f"{API}/servers", reason))


def reset_after_sending() -> ConnectionError:
    return ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")))


NEVER_LEFT = {"refused": refused, "no DNS answer": no_dns_answer, "connect timeout": lambda: ConnectTimeout("connect")}
MAY_HAVE_ARRIVED = {"read timeout": lambda: ReadTimeout("read"), "reset after sending": reset_after_sending}


def every_try(api, method: str, url: str, failure, settings) -> None:
    for _ in range(settings.HCLOUD_RETRIES + 1):
        api.add(method, url, body=failure())


def create(octoperf):
    return octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "SMALL"})


@pytest.mark.parametrize("failure", NEVER_LEFT, ids=list(NEVER_LEFT))
def test_a_create_that_never_reached_hetzner_is_terminated_at_once(hetzner_api, octoperf, settings, failure):
    settings.MAX_INSTANCES = 1
    every_try(hetzner_api, "POST", f"{API}/servers", NEVER_LEFT[failure], settings)

    response = create(octoperf)

    assert response.status_code == 503 and response["Retry-After"]
    assert list(Instance.objects.values_list("status", flat=True)) == ["terminated"]
    # Nothing bills, so nothing counts against MAX_INSTANCES: the next create is tried, not refused.
    every_try(hetzner_api, "POST", f"{API}/servers", NEVER_LEFT[failure], settings)
    assert create(octoperf).status_code == 503


@pytest.mark.parametrize("failure", MAY_HAVE_ARRIVED, ids=list(MAY_HAVE_ARRIVED))
def test_a_create_whose_request_may_have_arrived_is_deleted_to_be_sure(hetzner_api, octoperf, settings, failure):
    every_try(hetzner_api, "POST", f"{API}/servers", MAY_HAVE_ARRIVED[failure], settings)

    response = create(octoperf)

    assert response.status_code == 503
    assert list(Instance.objects.values_list("status", flat=True)) == ["deleting"]


def test_a_connect_timeout_after_a_try_that_may_have_arrived_proves_nothing(hetzner_api, octoperf, settings):
    # hcloud retries timeouts: its first try was sent and timed out reading, the last could not connect.
    hetzner_api.add("POST", f"{API}/servers", body=ReadTimeout("read"))
    for _ in range(settings.HCLOUD_RETRIES):
        hetzner_api.add("POST", f"{API}/servers", body=ConnectTimeout("connect"))

    assert create(octoperf).status_code == 503

    assert list(Instance.objects.values_list("status", flat=True)) == ["deleting"]


@pytest.mark.parametrize("failure", NEVER_LEFT, ids=list(NEVER_LEFT))
def test_an_allocate_that_never_reached_hetzner_is_released_at_once(hetzner_api, octoperf, settings, failure):
    every_try(hetzner_api, "POST", f"{API}/primary_ips", NEVER_LEFT[failure], settings)

    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "a"})

    assert response.status_code == 503
    assert list(StaticIP.objects.values_list("status", flat=True)) == ["released"]


@pytest.mark.parametrize("failure", ["refused", "no DNS answer"])
def test_hetzner_unreachable_is_said_so_not_as_a_timeout(hetzner_api, octoperf, settings, failure):
    every_try(hetzner_api, "POST", f"{API}/servers", NEVER_LEFT[failure], settings)

    response = create(octoperf)

    assert response.status_code == 503
    assert response.json()["error"] == {"code": "hetzner_unreachable", "message": "Hetzner could not be reached."}
    assert int(response["Retry-After"]) > 0
