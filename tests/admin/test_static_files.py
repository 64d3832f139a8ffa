"""A production deployment whose `collectstatic` was forgotten (or failed) still serves the admin."""

import logging

import pytest
from django.test import Client

from octoprovider.core.staticfiles import StaticFilesStorage


@pytest.fixture
def nothing_collected(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(StaticFilesStorage, "_warned", False)
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STATIC_ROOT.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "octoprovider.core.staticfiles.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True  # what settings choose when there is no manifest


def test_the_admin_answers_200_with_its_stylesheet_when_collectstatic_never_ran(nothing_collected, admin_user, caplog):
    client = Client()
    client.force_login(admin_user)

    with caplog.at_level(logging.WARNING, "octoprovider.core.staticfiles"):
        page = client.get("/admin/")

    assert page.status_code == 200
    assert '/static/admin/css/base.css"' in page.content.decode()
    assert Client().get("/static/admin/css/base.css").status_code == 200
    assert "collectstatic" in caplog.text
