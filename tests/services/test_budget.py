"""Hetzner's rate budget is shared through the database, keeps a reserve for mutations, and the sweep stays cheap."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerUnavailable
from octoprovider.hetzner import budget
from octoprovider.hetzner.sandbox import SandboxCloud
from octoprovider.models import HetznerRateBudget
from octoprovider.operations import dashboard
from octoprovider.operations.reconciler import reconcile_pass

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="parallel connections: PostgreSQL only (CI runs it)",
)
FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}
LIMIT = 100  # a small project budget, refilled like Hetzner's: the whole limit in an hour


@pytest.fixture
def small_cloud(sandbox):
    """Route Hetzner calls to a cloud whose budget is 100 requests an hour (a reserve of 10), on `settle`'s clock."""
    cloud = SandboxCloud(clock=sandbox.clock, rate_limit=LIMIT, rate_refill_per_second=LIMIT / 3600)
    hetzner.use_sandbox(cloud)
    return cloud


def spend_outside(cloud: SandboxCloud, *, leaving: int) -> None:
    """Spend the project's budget as another Hetzner client would, leaving `leaving` requests."""
    while cloud.rate_limit_remaining > leaving:
        cloud.handle("GET", "/locations", {}, None, {"Authorization": "Bearer someone-else"})


def server_lists(cloud: SandboxCloud, since: int = 0) -> list:
    return [r for r in cloud.requests[since:] if r.method == "GET" and r.path == "/servers"]


def is_full_listing(request) -> bool:
    return (
        "status" not in request.query
        and request.query.get("per_page") == ["50"]
        and " in (" not in (request.query["label_selector"][0])
    )


def advance(cloud: SandboxCloud, seconds: float) -> None:
    cloud.clock.advance(seconds)
    clock.advance(seconds)


# --- the shared figure ------------------------------------------------------------------------------


def test_every_hetzner_answer_records_its_rate_limit_headers_in_the_database(octoperf, sandbox):
    octoperf.create()

    row = HetznerRateBudget.objects.get()
    assert row.limit == 3600
    assert row.remaining == sandbox.rate_limit_remaining
    assert row.reset_at is not None and row.observed_at is not None
    assert row.observed_by == "a web process"


def test_the_reconciler_signs_what_it_saw(octoperf, settle):
    octoperf.create()

    settle(60, full=True)

    assert HetznerRateBudget.objects.get().observed_by == "the reconciler (full pass)"


def test_an_answer_arriving_late_never_overwrites_a_newer_one(db):
    now = clock.now()
    budget.record(limit=3600, remaining=1000, at=now)
    budget.record(limit=3600, remaining=3000, at=now - timedelta(seconds=5))

    assert HetznerRateBudget.objects.get().remaining == 1000


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_what_one_process_observed_is_what_another_decides_on():
    def other_process():
        budget.record(limit=3600, remaining=0)
        connection.close()

    thread = threading.Thread(target=other_process)
    thread.start()
    thread.join()

    with pytest.raises(HetznerUnavailable):
        budget.admit(refresh=False, what="create server")


def test_the_dashboard_shows_the_shared_estimate_and_the_reserve(octoperf, sandbox):
    octoperf.create()

    figure = dashboard.rate_budget()

    assert figure["remaining"] == sandbox.rate_limit_remaining
    assert figure["limit"] == 3600 and figure["reserve"] == 360
    assert figure["by"] == "a web process"
    assert figure["refreshes_deferred"] is False


# --- the reserve, and the local 503 --------------------------------------------------------------


def test_refreshes_wait_below_the_reserve_while_a_delete_still_goes_through(octoperf, small_cloud, settle):
    instance_id = octoperf.create()
    settle(60)
    spend_outside(small_cloud, leaving=8)
    settle(1, full=True)  # sees Hetzner's answer: 7 left, below the reserve of 10
    before = small_cloud.request_count

    report = settle(2)

    assert small_cloud.request_count == before
    assert report.deferred.startswith("Quick pass deferred: Hetzner's rate budget is estimated at 7 of 100")
    assert report.errors == [report.deferred]
    assert HetznerRateBudget.objects.get().deferred_refreshes == 1
    assert octoperf.delete(instance_id).status_code == 200
    assert [r.method for r in small_cloud.requests[before:]] == ["DELETE"]


def test_refreshes_resume_once_the_budget_has_refilled_above_the_reserve(octoperf, small_cloud, settle):
    octoperf.create()
    spend_outside(small_cloud, leaving=8)
    settle(1)
    assert settle(1).deferred

    report = settle(4 * 36)  # 100 an hour: one more request every 36 s

    assert not report.deferred
    assert Instance.objects.get().status == "running"


def test_a_create_is_refused_locally_with_503_and_retry_after_when_hetzner_would_answer_429(octoperf, small_cloud):
    budget.record(limit=LIMIT, remaining=0)  # as another process just heard it
    before = small_cloud.request_count

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "hetzner_rate_limit_exceeded"
    assert response["Retry-After"] == "36"
    assert small_cloud.request_count == before
    assert Instance.objects.get().status == "terminated"  # refused before Hetzner: nothing to clean up
    assert HetznerRateBudget.objects.get().refused_mutations == 1


def test_the_estimate_refills_with_time_and_stops_at_the_limit(db, small_cloud):
    budget.record(limit=LIMIT, remaining=0)
    with pytest.raises(HetznerUnavailable):
        budget.admit(refresh=False, what="create server")

    advance(small_cloud, 36)
    budget.admit(refresh=False, what="create server")
    with pytest.raises(HetznerUnavailable):
        budget.admit(refresh=True, what="list servers")  # 1 left: still below the reserve

    advance(small_cloud, 2 * 3600)
    assert budget.current().estimate() == LIMIT
    budget.admit(refresh=True, what="list servers")


def test_a_budget_never_observed_lets_everything_through(db):
    budget.admit(refresh=True, what="list servers")
    budget.admit(refresh=False, what="create server")


# --- the cheap sweep --------------------------------------------------------------------------------


@pytest.fixture
def swept_fleet(octoperf, settle) -> list[str]:
    """Three running instances, after the sweep that listed the whole fleet (one an hour at most)."""
    ids = [octoperf.create() for _ in range(3)]
    settle(60)
    settle(1, full=True)
    return ids


def external(sandbox, method: str, path: str) -> None:
    sandbox.handle(method, path, {}, None, {"Authorization": "Bearer t"})


def test_the_sweep_catches_a_server_stopped_outside_with_two_requests_and_no_listing(
    swept_fleet, sandbox, settle, octoperf
):
    stopped = swept_fleet[0]
    external(sandbox, "POST", f"/servers/{Instance.objects.get(pk=stopped).hetzner_id}/actions/poweroff")
    since = len(sandbox.requests)

    report = settle(30, full=True)

    assert octoperf.state(stopped) == "stopped"
    assert {octoperf.state(other) for other in swept_fleet[1:]} == {"running"}
    lists = server_lists(sandbox, since)
    assert len(lists) == report.hetzner_calls == 2
    assert not any(is_full_listing(request) for request in lists)


def test_the_sweep_catches_a_server_deleted_outside_by_counting_then_lists_the_fleet(
    swept_fleet, sandbox, settle, octoperf
):
    deleted = swept_fleet[1]
    external(sandbox, "DELETE", f"/servers/{Instance.objects.get(pk=deleted).hetzner_id}")
    settle(60)  # the delete finishes at Hetzner
    since = len(sandbox.requests)

    settle(30, full=True)

    assert octoperf.state(deleted) == "terminated"
    assert {octoperf.state(other) for other in (swept_fleet[0], swept_fleet[2])} == {"running"}
    assert sum(is_full_listing(request) for request in server_lists(sandbox, since)) == 1


def test_the_sweep_of_a_quiet_fleet_changes_nothing_and_lists_nothing(swept_fleet, sandbox, settle):
    since = len(sandbox.requests)

    report = settle(30, full=True)

    assert report.changed == 0 and report.observed == 3
    assert not any(is_full_listing(request) for request in server_lists(sandbox, since))


def test_the_fleet_is_listed_in_full_again_after_sweep_full_interval(swept_fleet, sandbox, settle, settings):
    settings.SWEEP_FULL_INTERVAL = 600
    since = len(sandbox.requests)
    settle(300, full=True)
    assert not any(is_full_listing(request) for request in server_lists(sandbox, since))

    settle(301, full=True)

    assert sum(is_full_listing(request) for request in server_lists(sandbox, since)) == 1


def test_two_reconcilers_share_the_full_listing(swept_fleet, sandbox, settings):
    settings.SWEEP_FULL_INTERVAL = 600
    advance(sandbox, 601)
    since = len(sandbox.requests)

    reconcile_pass(full=True)
    reconcile_pass(full=True)  # another reconciler, right after

    assert sum(is_full_listing(request) for request in server_lists(sandbox, since)) == 1


def test_a_zombie_server_running_under_a_terminated_row_is_still_found_by_the_sweep(swept_fleet, sandbox, settle):
    Instance.objects.filter(pk=swept_fleet[2]).update(status=Instance.Status.TERMINATED)

    settle(30, full=True)  # Hetzner counts one server more than the database: list them all
    settle(60)

    assert len(sandbox.servers) == 2
