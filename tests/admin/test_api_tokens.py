"""API tokens made in the admin: shown once, stored hashed, accepted like OCTOPERF_API_TOKENS, revocable."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from octoprovider.contract.authentication import token_matches
from octoprovider.core import clock
from octoprovider.models import ApiToken
from tests.admin.conftest import messages_of
from tests.conftest import OctoPerf

pytestmark = pytest.mark.django_db

TOKENS = "/admin/octoprovider/apitoken/"


@pytest.fixture
def created(admin_client) -> tuple[str, str]:
    """Create a token through the admin; return the page shown and the secret read from it."""
    response = admin_client.post(f"{TOKENS}add/", {"name": "workspace-a", "scope": "contract"})
    assert response.status_code == 200
    page = response.content.decode()
    secret = re.search(r'<code id="token-secret">([^<]+)</code>', page).group(1)
    return page, secret


def test_creating_a_token_shows_its_secret_once_and_the_base_url_for_octoperf(admin_client, created):
    page, secret = created
    token = ApiToken.objects.get()

    assert f"http://testserver/octoperf/{secret}" in page
    assert token.prefix == secret[:8]
    assert secret not in admin_client.get(TOKENS).content.decode()
    assert secret not in admin_client.get(f"{TOKENS}{token.pk}/change/").content.decode()
    assert token.prefix in admin_client.get(TOKENS).content.decode()


def test_the_page_with_the_secret_is_never_cached(admin_client):
    response = admin_client.post(f"{TOKENS}add/", {"name": "workspace-b", "scope": "contract"})

    assert "no-store" in response["Cache-Control"]


def test_the_secret_is_stored_nowhere_only_its_hash(created):
    _, secret = created

    row = ApiToken.objects.values().get()
    assert not any(secret in str(value) for value in row.values())
    assert not any(secret in str(value) for entry in LogEntry.objects.values() for value in entry.values())
    assert len(row["secret_hash"]) == 64


@pytest.mark.parametrize("how", ["path", "bearer"])
def test_a_token_made_in_the_admin_lets_octoperf_in(created, how):
    _, secret = created
    if how == "path":
        octoperf = OctoPerf(base=f"/octoperf/{secret}")
        response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1"})
    else:
        octoperf = OctoPerf(base="/octoperf")
        response = octoperf.call(
            "POST", "/static-ips/allocate", form={"region": "fsn1"}, HTTP_AUTHORIZATION=f"Bearer {secret}"
        )

    assert response.status_code == 200


def test_the_caller_is_named_after_the_token(created):
    _, secret = created

    assert token_matches(secret).name == "workspace-a"
    assert token_matches(secret + "x") is None


def test_a_revoked_token_gets_401(created, run_action):
    _, secret = created
    octoperf = OctoPerf(base=f"/octoperf/{secret}")
    assert octoperf.call("GET", "/instances/i-00000000000000000/state").status_code == 404

    confirm = run_action(TOKENS, "revoke", [ApiToken.objects.get().pk], confirm=False)
    assert "Yes, I’m sure" in confirm.content.decode()
    page = run_action(TOKENS, "revoke", [ApiToken.objects.get().pk])

    assert messages_of(page) == ["Revoked 1 API token."]
    assert octoperf.call("GET", "/instances/i-00000000000000000/state").status_code == 401
    assert ApiToken.objects.get().revoked_at is not None


def test_last_use_is_recorded_at_most_once_a_minute(created, django_assert_num_queries):
    _, secret = created
    token_matches(secret)
    first = ApiToken.objects.get().last_used_at

    with django_assert_num_queries(1):  # the lookup, no write
        token_matches(secret)
    clock.advance(61)
    token_matches(secret)

    assert first is not None
    assert ApiToken.objects.get().last_used_at > first


def test_tokens_cannot_be_edited_or_deleted_only_revoked(admin_client, created):
    token = ApiToken.objects.get()

    admin_client.post(f"{TOKENS}{token.pk}/change/", {"name": "renamed"})

    assert ApiToken.objects.get().name == "workspace-a"
    assert admin_client.post(f"{TOKENS}{token.pk}/delete/", {"post": "yes"}).status_code == 403


def test_a_read_only_token_is_made_for_the_allow_list_and_its_scope_is_listed(admin_client):
    page = admin_client.post(f"{TOKENS}add/", {"name": "terraform", "scope": "read"}).content.decode()
    secret = re.search(r'<code id="token-secret">([^<]+)</code>', page).group(1)

    assert "http://testserver/api/allow-list" in page and f"/octoperf/{secret}" not in page
    assert ApiToken.objects.get().scope == "read"
    assert (
        '<td class="field-scope">read-only (the allow-list, for scripts)</td>'
        in admin_client.get(TOKENS).content.decode()
    )
    assert Client().get("/api/allow-list", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    assert OctoPerf(base=f"/octoperf/{secret}").call("POST", "/static-ips/allocate").status_code == 403
