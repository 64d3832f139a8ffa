"""A wrong HCLOUD_SSH_KEYS, HCLOUD_FIREWALLS or HCLOUD_IMAGE is the operator's error: start-up and /readyz
say so, and OctoPerf gets 503 `configuration_error`, never a 400 that blames its request."""

import pytest
from django.core import checks
from django.test import Client

from instances.models import Instance


@pytest.fixture
def wrong_ssh_key(settings, sandbox):
    sandbox.add_ssh_key("ops")
    settings.HCLOUD_SSH_KEYS = ["ops", "opz"]


def test_a_create_with_an_ssh_key_the_project_lacks_answers_503_configuration_error(octoperf, wrong_ssh_key, sandbox):
    response = octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "configuration_error"
    assert "HCLOUD_SSH_KEYS" in response.json()["error"]["message"]
    assert response["Retry-After"]
    assert not [r for r in sandbox.requests if r.method == "POST" and r.path == "/servers"]
    assert Instance.objects.get().status == "terminated"


def test_a_key_deleted_at_hetzner_after_start_up_still_answers_configuration_error(octoperf, settings, sandbox):
    key_id = sandbox.add_ssh_key("ops")
    settings.HCLOUD_SSH_KEYS = ["ops"]
    octoperf.create()  # the settings are found complete, and not asked about again
    sandbox._ssh_keys.pop(key_id)

    response = octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "configuration_error"


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [("HCLOUD_FIREWALLS", ["agents"], "HCLOUD_FIREWALLS"), ("HCLOUD_IMAGE", "docker-cee", "HCLOUD_IMAGE")],
)
def test_a_firewall_or_image_the_project_lacks_answers_503_configuration_error(
    octoperf, settings, setting, value, named
):
    setattr(settings, setting, value)

    response = octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "configuration_error"
    assert named in response.json()["error"]["message"]


def test_readyz_is_503_naming_the_wrong_setting_but_not_its_value(db, wrong_ssh_key):
    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["configuration"]
    assert "HCLOUD_SSH_KEYS" in response.json()["checks"]["configuration"]
    assert "opz" not in response.content.decode()


def test_the_start_up_check_names_the_missing_ssh_key(db, wrong_ssh_key):
    errors = [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "octoprovider.W004"]

    assert [error.level for error in errors] == [checks.WARNING]
    assert "'opz'" in errors[0].msg and "HCLOUD_SSH_KEYS" in errors[0].msg


def test_the_start_up_check_is_silent_when_the_settings_match_the_project(db, settings, sandbox):
    sandbox.add_ssh_key("ops")
    sandbox.add_firewall("agents")
    settings.HCLOUD_SSH_KEYS, settings.HCLOUD_FIREWALLS = ["ops"], ["agents"]

    assert not [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "octoprovider.W004"]


def test_the_reconcilers_start_names_the_missing_ssh_key(db, wrong_ssh_key):
    import io

    from django.core.management import call_command

    err = io.StringIO()
    call_command("reconcile", "--wait", "0", skip_checks=False, stdout=io.StringIO(), stderr=err)

    assert "octoprovider.W004" in err.getvalue() and "'opz'" in err.getvalue()
