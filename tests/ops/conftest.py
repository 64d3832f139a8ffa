"""Fixtures for the operations tests: probes, metrics, logs, the published contract."""

import pytest
from django.core.cache import cache
from django.test import Client

METRICS_TOKEN = "metrics-token-0123456789abcdef0123456789"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Forget the cached Hetzner readiness check between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def scrape(settings, db):
    """Scrape /metrics the way Prometheus does, and return the text."""
    settings.METRICS_TOKEN = METRICS_TOKEN

    def run() -> str:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
        assert response.status_code == 200, response.content
        return response.content.decode()

    return run
