"""The state tells the truth at once: a static-IP move that power-cycles a server never shows `running` early.

From the moment the associate (or dissociate, or a delete) is answered, no poll says `running` until
the instance's server is back up with its new address. Polls are made right after the call, at every
answer Hetzner gives during the reconciler's passes (between its observation and its steps), and
after every pass.
"""

from dataclasses import dataclass

import pytest

from octoprovider import hetzner
from staticips.models import Association
from tests.conftest import address_of, public_ipv4

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("with_latency", "no_leftovers")]


@dataclass(frozen=True)
class Poll:
    state: str
    server_status: str | None
    address: str | None


class Poller:
    """Poll instances' states as OctoPerf does, also while each reconcile pass is talking to Hetzner."""

    def __init__(self, octoperf, sandbox, instance_ids):
        self.octoperf, self.sandbox, self.instance_ids = octoperf, sandbox, instance_ids
        self.polls: dict[str, list[Poll]] = {instance_id: [] for instance_id in instance_ids}

    def poll(self) -> None:
        for instance_id in self.instance_ids:
            state = self.octoperf.state(instance_id)
            server = self.sandbox.servers.get(server_of_id(instance_id))
            self.polls[instance_id].append(
                Poll(
                    state,
                    server["status"] if server else None,
                    public_ipv4(self.sandbox, instance_id) if server else None,
                )
            )

    def __call__(self, response, *args, **kwargs):
        self.poll()

    def run(self, settle, passes: int, seconds: float = 1) -> None:
        self.poll()  # right after the call was answered
        hetzner.add_response_hook(self)
        try:
            for _ in range(passes):
                settle(seconds)
                self.poll()
        finally:
            hetzner.remove_hook(self)


def server_of_id(instance_id: str) -> int | None:
    from instances.models import Instance

    return Instance.objects.get(pk=instance_id).hetzner_id


def early_runnings(polls: list[Poll], back) -> list[Poll]:
    """The polls that said `running` before the server was back (`back(poll)`) for the first time."""
    early = []
    for poll in polls:
        if back(poll):
            break
        if poll.state == "running":
            early.append(poll)
    return early


def test_no_poll_says_running_from_an_associate_until_the_server_is_back_with_the_static_ip(
    octoperf, sandbox, settle, running
):
    ip_id = octoperf.allocate()  # after the create: the server has an IPv4 of its own, a power cycle is needed
    assert octoperf.associate(ip_id, running).status_code == 200

    poller = Poller(octoperf, sandbox, [running])
    poller.run(settle, passes=40)

    polls = poller.polls[running]
    back = lambda poll: poll.server_status == "running" and poll.address == address_of(ip_id)  # noqa: E731
    assert early_runnings(polls, back) == []
    assert "stopped" in [poll.state for poll in polls]
    assert polls[-1].state == "running" and back(polls[-1])
    assert Association.objects.get().status == "associated"


def test_no_poll_says_running_from_a_dissociate_until_the_server_is_back_with_an_ipv4_of_its_own(
    octoperf, sandbox, settle, associated
):
    ip_id, instance_id, association_id = associated
    static_address = address_of(ip_id)
    assert octoperf.dissociate(ip_id, instance_id, association_id).status_code == 200

    poller = Poller(octoperf, sandbox, [instance_id])
    poller.run(settle, passes=40)

    polls = poller.polls[instance_id]
    back = lambda poll: poll.server_status == "running" and poll.address not in (None, static_address)  # noqa: E731
    assert early_runnings(polls, back) == []
    assert polls[-1].state == "running" and back(polls[-1])


@pytest.mark.parametrize("passes_before_delete", [0, 1, 3, 6, 9])
def test_no_poll_says_running_after_a_delete_answered_during_the_move(
    octoperf, sandbox, settle, running, passes_before_delete
):
    ip_id = octoperf.allocate()
    octoperf.associate(ip_id, running)
    for _ in range(passes_before_delete):
        settle(2)

    assert octoperf.delete(running).status_code == 200
    poller = Poller(octoperf, sandbox, [running])
    poller.run(settle, passes=30)

    assert "running" not in [poll.state for poll in poller.polls[running]]
    assert poller.polls[running][-1].state == "terminated"


def test_no_poll_says_running_for_a_server_moved_off_the_static_ip_it_got_at_create(octoperf, sandbox, settle):
    # X got the only static IP at create; OctoPerf associates that ipId with I, which has none: X is
    # power-cycled onto an IPv4 of its own first (without STATIC_IP_STRICT), then I onto the IP.
    bare = octoperf.create()
    settle(60)
    ip_id = octoperf.allocate()
    holder = octoperf.create()
    settle(60)
    address = address_of(ip_id)
    assert public_ipv4(sandbox, holder) == address

    assert octoperf.associate(ip_id, bare).status_code == 200
    poller = Poller(octoperf, sandbox, [holder, bare])
    poller.run(settle, passes=60)

    holder_back = lambda poll: poll.server_status == "running" and poll.address not in (None, address)  # noqa: E731
    bare_back = lambda poll: poll.server_status == "running" and poll.address == address  # noqa: E731
    assert early_runnings(poller.polls[holder], holder_back) == []
    assert early_runnings(poller.polls[bare], bare_back) == []
    assert octoperf.state(holder) == "running" and octoperf.state(bare) == "running"
    assert public_ipv4(sandbox, bare) == address
