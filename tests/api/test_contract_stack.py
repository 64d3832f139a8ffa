"""OctoPerf's calls skip the admin's browser middleware (sessions, CSRF, users, messages); the admin keeps it."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from octoprovider.checks import CONTRACT_ROUTER, contract_middleware
from octoprovider.contract.authentication import ApiClient
from tests.conftest import TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_superuser("ops", "ops@example.com", "a long passphrase")


def test_a_contract_call_gets_no_session_user_or_messages_even_from_a_logged_in_browser(octoperf, operator):
    instance_id = octoperf.create()
    browser = Client()
    browser.force_login(operator)

    response = browser.get(f"/octoperf/{TOKEN}/instances/{instance_id}/state")

    assert response.status_code == 200
    request = response.wsgi_request
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    assert isinstance(request.user, ApiClient)  # OctoPerf's token, not the operator's login
    assert "Set-Cookie" not in response and not response.cookies
    assert "Cookie" not in response.get("Vary", "")


def test_a_contract_call_keeps_the_security_headers_and_the_request_id(octoperf):
    instance_id = octoperf.create()

    response = octoperf.call("GET", f"/instances/{instance_id}/state")

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert len(response["X-Request-ID"]) == 32


def test_a_contract_post_from_a_logged_in_browser_needs_no_csrf_token(operator):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)

    response = browser.post(
        f"/octoperf/{TOKEN}/instances",
        {"userData": "x", "region": "fsn1", "type": "SMALL"},
    )

    assert response.status_code == 200


def test_the_admin_still_has_sessions_csrf_and_messages(operator):
    browser = Client(enforce_csrf_checks=True)

    login_page = browser.get("/admin/login/")
    assert "csrftoken" in login_page.cookies
    assert login_page["X-Frame-Options"] == "DENY"
    assert isinstance(login_page.wsgi_request.user, AnonymousUser)

    refused = browser.post("/admin/login/", {"username": "ops", "password": "a long passphrase"})
    assert refused.status_code == 403  # no CSRF token

    logged_in = browser.post(
        "/admin/login/?next=/admin/",
        {
            "username": "ops",
            "password": "a long passphrase",
            "csrfmiddlewaretoken": login_page.cookies["csrftoken"].value,
        },
    )
    assert logged_in.status_code == 302
    assert "sessionid" in browser.cookies
    dashboard = browser.get("/admin/")
    assert dashboard.status_code == 200
    assert dashboard.wsgi_request.user == operator
    assert hasattr(dashboard.wsgi_request, "_messages")


def test_the_probes_keep_their_request_id(db):
    assert len(Client().get("/healthz")["X-Request-ID"]) == 32


def test_start_up_refuses_a_middleware_list_that_does_not_start_with_the_contract_router(settings):
    settings.MIDDLEWARE = [entry for entry in settings.MIDDLEWARE if entry != CONTRACT_ROUTER] + [CONTRACT_ROUTER]

    assert [message.id for message in contract_middleware(None)] == ["octoprovider.E001"]
    settings.MIDDLEWARE = [CONTRACT_ROUTER, *settings.MIDDLEWARE[:-1]]
    assert contract_middleware(None) == []
