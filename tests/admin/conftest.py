"""What the operators' console tests share: posting an action, and a cache emptied between tests."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.cache import cache


@pytest.fixture
def run_action(admin_client):
    """Post an admin action on the given rows, confirmed or not, and return the response (redirects followed)."""

    def run(changelist: str, action: str, pks: list[str], *, confirm: bool = True):
        data = {"action": action, ACTION_CHECKBOX_NAME: pks}
        if confirm:
            data["post"] = "yes"
        return admin_client.post(changelist, data, follow=True)

    return run


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture(autouse=True)
def empty_cache():
    """Forget Hetzner's prices and rate budget that earlier tests left in this process's cache."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hash the admin user's password cheaply: the real hasher costs a third of a second per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
