"""Probes: /healthz answers while the process serves, /readyz checks the database and the Hetzner token."""

import logging

import pytest
from django.db import OperationalError
from django.test import Client

from octoprovider import __version__
from octoprovider.operations import health


def hetzner_token_checks(sandbox) -> int:
    return sum(1 for request in sandbox.requests if request.path == "/locations")


def test_healthz_answers_200_json_without_a_token(db):
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"status": "ok", "version": __version__}


def test_readyz_is_200_when_the_database_and_hetzner_answer(db, sandbox):
    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "hetzner": "ok", "configuration": "ok"}}
    assert hetzner_token_checks(sandbox) == 1


def test_readyz_asks_hetzner_at_most_once_a_minute(db, sandbox):
    for _ in range(5):
        assert Client().get("/readyz").status_code == 200

    assert hetzner_token_checks(sandbox) == 1


def test_readyz_is_503_naming_hetzner_when_the_token_is_rejected(db, sandbox, settings):
    settings.HCLOUD_TOKEN = "revoked-hcloud-token-abcdefabcdef"
    sandbox.inject_fault("GET", "/locations", code="unauthorized", status=401)

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["failed"] == ["hetzner"]
    assert "hetzner_unauthorized" in response.json()["checks"]["hetzner"]
    assert settings.HCLOUD_TOKEN not in response.content.decode()


def test_readyz_stays_200_when_hetzner_is_only_unavailable(db, sandbox):
    sandbox.inject_fault("GET", "/locations", code="rate_limit_exceeded", status=429, times=10)

    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["hetzner"] == "unavailable (hetzner_rate_limit_exceeded)"


def test_readyz_is_503_naming_the_database_when_it_does_not_answer(db, sandbox, monkeypatch, settings):
    class Unreachable:
        def cursor(self):
            raise OperationalError(f"could not connect to {settings.DATABASES['default']['NAME']}")

    monkeypatch.setattr(health, "connection", Unreachable())

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    assert response.json()["checks"]["database"] == "unreachable (OperationalError)"
    assert str(settings.DATABASES["default"]["NAME"]) not in response.content.decode()


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_reveal_no_secret(db, sandbox, settings, path):
    body = Client().get(path).content.decode()

    for secret in [settings.SECRET_KEY, *settings.OCTOPERF_API_TOKENS]:
        assert secret not in body


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/readyz/"])
def test_probes_answer_on_localhost_with_a_strict_allowed_hosts(db, settings, path):
    settings.ALLOWED_HOSTS = ["octoprovider.example.com"]

    response = Client().get(path, HTTP_HOST="localhost:8000")

    assert response.status_code == 200
    assert response["X-Request-ID"]


def test_metrics_answer_on_localhost_with_a_strict_allowed_hosts(db, settings):
    settings.ALLOWED_HOSTS = ["octoprovider.example.com"]
    settings.METRICS_TOKEN = "m" * 43

    response = Client().get("/metrics", HTTP_HOST="127.0.0.1:8000", HTTP_AUTHORIZATION=f"Bearer {'m' * 43}")

    assert response.status_code == 200


def test_a_wrong_host_elsewhere_is_refused_with_a_one_line_warning(db, settings):
    settings.ALLOWED_HOSTS = ["octoprovider.example.com"]
    records = Records()
    logger = logging.getLogger("django.security.DisallowedHost")
    logger.addHandler(records)
    try:
        response = Client().get("/admin/login/", HTTP_HOST="localhost:8000")
    finally:
        logger.removeHandler(records)

    assert response.status_code == 400
    assert [(r.levelname, r.exc_info) for r in records.records] == [("WARNING", None)]
    assert "\n" not in records.records[0].getMessage()
