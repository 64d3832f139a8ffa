"""The refresher keeps states fresh in batched Hetzner calls, never one per instance or per poll."""

import copy

import pytest

from instances import reconciling
from instances.models import Instance
from octoprovider import hetzner
from tests.conftest import server_of

pytestmark = pytest.mark.django_db


def server_lists(sandbox) -> list:
    return [r for r in sandbox.requests if r.method == "GET" and r.path == "/servers"]


def test_a_quick_refresh_looks_up_120_booting_instances_in_3_calls(octoperf, sandbox, settings):
    settings.MAX_INSTANCES = settings.MAX_INSTANCES_PER_REGION = 200
    for _ in range(120):
        octoperf.create()
    sandbox.clock.advance(60)
    before = len(server_lists(sandbox))

    report = reconciling.instances_refresh()

    assert len(server_lists(sandbox)) - before == 3
    assert report.observed == 120
    assert set(Instance.objects.values_list("status", flat=True)) == {"running"}


def test_a_quick_refresh_calls_hetzner_not_at_all_when_nothing_is_in_transition(octoperf, settle, sandbox):
    octoperf.create()
    settle(60)
    before = sandbox.request_count

    report = reconciling.instances_refresh()

    assert sandbox.request_count == before
    assert report.hetzner_calls == 0


def test_a_full_refresh_pages_through_the_whole_fleet(octoperf, settle, sandbox):
    for _ in range(60):
        octoperf.create()
    settle(60)
    before = len(server_lists(sandbox))

    report = reconciling.instances_refresh(full=True)

    assert len(server_lists(sandbox)) - before == 2  # 50 a page
    assert report.observed == 60


def test_refresh_only_asks_for_this_deployments_servers(octoperf, settle, sandbox):
    octoperf.create()
    settle(60)

    reconciling.instances_refresh(full=True)

    selector = server_lists(sandbox)[-1].query["label_selector"][0]
    assert "managed-by=octoprovider" in selector
    assert "octoprovider-deployment=default" in selector


def test_a_server_left_running_under_a_terminated_row_is_deleted(octoperf, settle, sandbox):
    instance_id = octoperf.create()
    settle(60)
    # As if a row was marked terminated by mistake (an operator, a restore from backup).
    Instance.objects.filter(pk=instance_id).update(status=Instance.Status.TERMINATED)

    settle(1, full=True)
    settle(60)

    assert sandbox.servers == {}


def another_deployments_server(sandbox, *, our_id: str) -> int:
    """Create, as another octoprovider deployment on the same Hetzner project would, a server of its own."""
    labels = {
        hetzner.LABEL_MANAGED_BY: hetzner.MANAGED_BY,
        hetzner.LABEL_DEPLOYMENT: "staging",
        hetzner.LABEL_ID: our_id,
    }
    server = {"name": f"octoperf-{our_id}", "server_type": "cx23", "image": "docker-ce", "location": "fsn1"}
    status, _, body = sandbox.handle(
        "POST", "/servers", {}, {**server, "labels": labels}, {"Authorization": "Bearer x"}
    )
    assert status == 201, body
    return body["server"]["id"]


def test_a_server_of_another_deployment_is_never_touched(octoperf, settle, sandbox):
    # A staging deployment started from a copy of our database: its instance ids are ours, its label is not.
    ended = octoperf.create()
    settle(60)
    octoperf.delete(ended)
    settle(60)
    assert (octoperf.state(ended), sandbox.servers) == ("terminated", {})
    ours = octoperf.create()
    theirs = another_deployments_server(sandbox, our_id=ended)
    settle(60)
    their_server, our_server = copy.deepcopy(sandbox.servers[theirs]), copy.deepcopy(server_of(sandbox, ours))
    mutations = len(sandbox.mutation_requests())

    reconciling.instances_refresh(full=True)
    for _ in range(3):
        settle(60, full=True)  # the whole reconciler too: its sweep deletes servers alive under ended rows

    assert len(sandbox.mutation_requests()) == mutations
    assert sandbox.servers[theirs] == their_server  # neither deleted nor changed
    assert their_server["status"] == "running"
    assert server_of(sandbox, ours) == our_server
    assert (Instance.objects.get(pk=ours).status, octoperf.state(ours)) == ("running", "running")
    assert octoperf.state(ended) == "terminated"


def test_an_abandoned_create_with_no_server_ends_terminated_after_the_grace(db, settle, settings):
    instance = Instance.objects.create(region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="x")

    settle(60)
    assert Instance.objects.get(pk=instance.pk).status == "creating"

    settle(settings.CREATE_GRACE)
    assert Instance.objects.get(pk=instance.pk).status == "terminated"


def test_a_create_whose_request_died_after_hetzner_made_the_server_is_deleted_after_the_grace(
    db, settle, sandbox, settings
):
    # The process died between Hetzner's answer and our write: the row is `creating`, no id, and
    # OctoPerf never learned the instance id. Nobody would ever delete that server.
    instance = Instance.objects.create(region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="x")
    hetzner.create_server(
        name=instance.name,
        server_type="cx23",
        image="docker-ce",
        location="fsn1",
        user_data="x",
        labels=hetzner.ownership_labels(instance.id),
        ssh_keys=[],
        firewalls=[],
    )

    settle(60)
    assert Instance.objects.get(pk=instance.pk).status == "creating"  # maybe the request is just slow
    assert len(sandbox.servers) == 1

    settle(settings.CREATE_GRACE)
    settle(60)

    assert sandbox.servers == {}
    assert Instance.objects.get(pk=instance.pk).status == "terminated"


class WithoutTotals:
    """The sandbox answering lists as Hetzner may: `total_entries` and `last_page` are nullable."""

    def __init__(self, cloud):
        self.cloud = cloud

    def handle(self, method, path, query, body, headers):
        status, response_headers, payload = self.cloud.handle(method, path, query, body, headers)
        pagination = (payload or {}).get("meta", {}).get("pagination")
        if pagination:
            pagination.update(total_entries=None, last_page=None)
        return status, response_headers, payload


def test_a_sweep_lists_the_fleet_when_hetzner_does_not_say_how_many_servers_there_are(octoperf, settle, sandbox):
    kept = octoperf.create()
    zombie = octoperf.create()
    settle(60, full=True)  # the first sweep lists the fleet; the next ones count it
    # A server alive under a terminated row: only a listing finds it, and only a count says to list.
    Instance.objects.filter(pk=zombie).update(status=Instance.Status.TERMINATED)
    hetzner.use_sandbox(WithoutTotals(sandbox))

    settle(1, full=True)
    settle(60)

    assert [server["name"] for server in sandbox.servers.values()] == [f"octoperf-{kept}"]
