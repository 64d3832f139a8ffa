"""OctoPerf's teardown order: dissociate, then release at once, with the instance deleted or not between.

A release sent while the dissociation's power cycle is still running is accepted (200) and carried
out once the move has ended: nothing may be left billed, and the server keeps an IPv4 (or is gone).
Each case is run with the release (and the delete) sent at every stage of that power cycle.
"""

import pytest

from instances.models import Instance
from staticips.models import Association, StaticIP
from tests.conftest import public_ipv4

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("with_latency", "no_leftovers")]

# Where the dissociation's power cycle is when OctoPerf's next call comes: before any step, then after
# each step the reconciler sends.
STAGES = ["at once", "poweroff", "unassign", "create_own_ipv4", "poweron"]
ORDERS = ["dissociate, release", "dissociate, delete, release", "dissociate, release, delete"]


def until_stage(settle, association_id: str, stage: str) -> None:
    """Run reconcile passes, a second apart, until the dissociation has sent `stage`."""
    if stage == "at once":
        return
    for _ in range(60):
        if Association.objects.get(pk=association_id).step == stage:
            return
        settle(1)
    raise AssertionError(f"{association_id} never reached {stage}")


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("order", ORDERS)
def test_a_release_right_after_a_dissociate_is_accepted_and_leaves_nothing_billed(
    octoperf, sandbox, settle, associated, order, stage
):
    ip_id, instance_id, association_id = associated
    released_primary_ip = StaticIP.objects.get(pk=ip_id).hetzner_id

    assert octoperf.dissociate(ip_id, instance_id, association_id).status_code == 200
    until_stage(settle, association_id, stage)
    if order == "dissociate, delete, release":
        assert octoperf.delete(instance_id).status_code == 200
    response = octoperf.release(ip_id)
    assert response.status_code == 200, response.content
    if order == "dissociate, release, delete":
        assert octoperf.delete(instance_id).status_code == 200
    for _ in range(20):
        settle(3)

    assert released_primary_ip not in sandbox.primary_ips, "the released static IP is still billed"
    assert StaticIP.objects.get(pk=ip_id).status == "released"
    if "delete" in order:
        assert sandbox.servers == {}
        assert octoperf.state(instance_id) == "terminated"
    else:
        assert octoperf.state(instance_id) == "running"
        assert public_ipv4(sandbox, instance_id) is not None, "the server was left without an IPv4"
    # Nothing else is billed either: every IPv4 left is a live server's own, deleted with it.
    live = set(Instance.objects.exclude(status="terminated").values_list("hetzner_id", flat=True))
    assert all(ip["assignee_id"] in live and ip["auto_delete"] for ip in sandbox.primary_ips.values())


def test_a_release_of_an_ip_still_associated_with_a_live_instance_is_still_409(octoperf, associated):
    ip_id, _, _ = associated

    response = octoperf.release(ip_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "static_ip_in_use"
