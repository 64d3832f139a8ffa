"""Static IPs in OctoPerf's order: how many power cycles, how long until the static address, how many requests.

    .venv/bin/python bench/static_ips.py [--instances 20] [--ips 20 10] [--shuffle]

For each number of static IPs: allocate them, create the instances at one simulated instant, poll
every instance's state as OctoPerf does (in creation order; `--shuffle` for a random order) and
associate a free ipId with each instance as it turns `running`, while there is one. With fewer IPs
than instances, the first instances are then deleted and dissociated, and their ipIds associated with
instances still without one (the move as before: a power cycle). In the end everything is deleted,
dissociated and released, and the Hetzner project must be empty.

Simulated time moves in 0.1 s steps with the reconciler loop's passes (quick every REFRESH_INTERVAL,
sweep every SWEEP_INTERVAL). For each association it reports the time from the associate call to
the first step at which the state endpoint answers `running` and the instance's server has the
ipId's address, the power-offs sent, and the Hetzner requests (all, and mutations) per association
between the first associate and the last one settled.
"""

import argparse
import random
import time

from _harness import BASE, Reconciler, advance, cloud, create, machine, octoperf, percentile, state

from instances.models import Instance
from staticips.models import StaticIP

STEP = 0.1
FORM = "application/x-www-form-urlencoded; charset=UTF-8"


def call(method: str, path: str, body: str = ""):
    response = octoperf.generic(method, f"{BASE}{path}", body, content_type=FORM)
    assert response.status_code == 200, (path, response.content)
    return response.json().get("value") if response.content else None


def allocate() -> str:
    return call("POST", "/static-ips/allocate", "region=fsn1&zone=default")


def server_address(instance_id: str) -> str | None:
    hetzner_id = Instance.objects.get(pk=instance_id).hetzner_id
    ipv4 = cloud.servers[hetzner_id]["public_net"]["ipv4"] if hetzner_id in cloud.servers else None
    return ipv4["ip"] if ipv4 else None


class Run:
    """One scenario: its clock, its reconciler loop, and OctoPerf's view (free ipIds, associations)."""

    def __init__(self, shuffle: bool) -> None:
        self.reconciler = Reconciler()
        self.now = 0.0
        self.shuffle = shuffle
        self.free: list[str] = []
        self.associations: dict[str, tuple[str, str]] = {}  # instance -> (ipId, associationId)
        self.associated_at: dict[str, float] = {}
        self.settled_at: dict[str, float] = {}
        self.counted: list = []  # the Hetzner requests from each wave's first associate until it settled
        self._wave_start: int | None = None

    def step(self) -> None:
        advance(STEP)
        self.now += STEP
        self.reconciler.tick(self.now)

    def associate_running(self, instance_ids: list[str]) -> None:
        order = list(instance_ids)
        if self.shuffle:
            random.shuffle(order)
        for instance_id in order:
            if self.free and instance_id not in self.associations and state(instance_id) == "running":
                if self._wave_start is None:
                    self._wave_start = len(cloud.requests)
                ip_id = self.free.pop(0)
                body = f"region=fsn1&zone=default&instanceId={instance_id}&id={ip_id}"
                self.associations[instance_id] = (ip_id, call("PUT", "/static-ips/associate", body))
                self.associated_at[instance_id] = self.now

    def note_settled(self) -> None:
        for instance_id, (ip_id, _) in self.associations.items():
            if instance_id in self.settled_at:
                continue
            if (
                state(instance_id) == "running"
                and server_address(instance_id) == StaticIP.objects.get(pk=ip_id).address
            ):
                self.settled_at[instance_id] = self.now

    def until_settled(self, instance_ids: list[str], *, limit: float = 600) -> None:
        deadline = self.now + limit
        while self.now < deadline:
            self.associate_running(instance_ids)
            self.note_settled()
            if len(self.settled_at) == len(self.associations) and (
                not self.free or len(self.associations) == len(instance_ids)
            ):
                self.counted += cloud.requests[self._wave_start or len(cloud.requests) :]
                self._wave_start = None
                return
            self.step()
        raise SystemExit(f"not settled after {limit:g} simulated seconds")

    def dissociate(self, instance_id: str) -> None:
        ip_id, association_id = self.associations.pop(instance_id)
        body = f"region=fsn1&zone=default&instanceId={instance_id}&id={ip_id}&associationId={association_id}"
        call("PUT", "/static-ips/dissociate", body)
        self.settled_at.pop(instance_id, None)
        self.free.append(ip_id)


def scenario(instances: int, ips: int, shuffle: bool) -> None:
    run = Run(shuffle)
    requests_before = len(cloud.requests)
    run.free = [allocate() for _ in range(ips)]
    instance_ids = [create()[1] for _ in range(instances)]
    run.until_settled(instance_ids)
    latencies = {i: run.settled_at[i] - run.associated_at[i] for i in run.associations}

    if ips < instances:
        # OctoPerf replaces the first instances; their ipIds go to those still without one.
        first = [i for i in instance_ids if i in run.associations][: instances - ips]
        for instance_id in first:
            call("DELETE", f"/instances?instanceId={instance_id}")
            run.dissociate(instance_id)
        rest = [i for i in instance_ids if i not in first]
        run.associated_at = {i: t for i, t in run.associated_at.items() if i in run.associations}
        run.until_settled(rest)
        for instance_id in run.associations:
            latencies[instance_id] = run.settled_at[instance_id] - run.associated_at[instance_id]
    requests = run.counted
    count = len(latencies)
    offs = sum(1 for r in requests if r.method == "POST" and r.path.endswith("/actions/poweroff"))
    mutations = sum(1 for r in requests if r.method != "GET")

    # The end of the run: delete, dissociate, release; then nothing may be left at Hetzner.
    for instance_id in instance_ids:
        call("DELETE", f"/instances?instanceId={instance_id}")
    for instance_id in list(run.associations):
        run.dissociate(instance_id)
    for ip_id in StaticIP.objects.exclude(status="released").values_list("pk", flat=True):
        call("DELETE", f"/static-ips/release?region=fsn1&zone=default&id={ip_id}")
    for _ in range(600):
        run.step()
        if not cloud.servers and not cloud.primary_ips:
            break
    left = (len(cloud.servers), len(cloud.primary_ips))

    values = sorted(latencies.values())
    print(f"{ips} static IPs, {instances} instances: {count} associations")
    print(f"  power-offs sent: {offs}")
    print(
        f"  associate -> running with the static address: median {percentile(values, 50):.1f} s, "
        f"p90 {percentile(values, 90):.1f} s, max {values[-1]:.1f} s (simulated); "
        f"at once (0.0 s): {sum(1 for v in values if v == 0)}"
    )
    print(
        f"  Hetzner requests per association: {len(requests) / count:.1f} "
        f"({mutations / count:.1f} mutations), from each wave's first associate until it settled"
    )
    print(
        f"  left at Hetzner after release: {left[0]} servers, {left[1]} Primary IPs; "
        f"requests in the scenario: {len(cloud.requests) - requests_before}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--ips", type=int, nargs="+", default=[20, 10])
    parser.add_argument("--shuffle", action="store_true", help="poll instances in a random order (seed 12)")
    args = parser.parse_args()
    random.seed(12)
    started = time.perf_counter()
    print(f"machine: {machine()}")
    for ips in args.ips:
        scenario(args.instances, ips, args.shuffle)
    print(f"wall clock: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
