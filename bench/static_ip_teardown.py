"""OctoPerf's teardown order for static IPs: how many runs answer 409 or leave an IP billed.

    .venv/bin/python bench/static_ip_teardown.py [--runs 20] [--latency 0.005] [--seed 1]

Each run creates an instance, associates a static IP allocated after it (a power cycle moves the IP),
waits until the instance is `running` with it, then tears down as OctoPerf does: dissociate, then
release at once, the instance deleted (or not) in between. "At once" falls at a random moment of the
dissociation's power cycle: the reconciler loop (quick passes every REFRESH_INTERVAL) runs for 0 to
12 simulated seconds between the dissociate and the release. A release refused with 409 is not sent
again (OctoPerf does not retry it). Then the instance is deleted, simulated time runs for up to two
minutes, and the run counts as leaving an IP billed if the Primary IP is still at Hetzner (the
sandbox). Every Hetzner answer takes `--latency` seconds of wall-clock time.
"""

import argparse
import random

from _harness import BASE, Reconciler, advance, cloud, create, machine, octoperf, state

from instances.models import Instance
from staticips.models import StaticIP

STEP = 0.5
FORM = "application/x-www-form-urlencoded; charset=UTF-8"
ORDERS = ["dissociate, release", "dissociate, delete, release", "dissociate, release, delete"]


class Clock:
    """Simulated seconds since the start, with the reconciler loop's passes as they fall due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reconciler = Reconciler()

    def run(self, seconds: float, until=None) -> None:
        for _ in range(int(seconds / STEP)):
            if until is not None and until():
                return
            advance(STEP)
            self.now += STEP
            self.reconciler.tick(self.now)


def call(method: str, path: str, body: str = ""):
    response = octoperf.generic(method, f"{BASE}{path}", body, content_type=FORM)
    return response.status_code, (response.json().get("value") if response.content else None)


def one_run(clock: Clock, order: str, rng: random.Random) -> dict[str, bool]:
    status, instance_id = create()
    assert status == 200, instance_id
    clock.run(60, until=lambda: state(instance_id) == "running")
    _, ip_id = call("POST", "/static-ips/allocate", "region=fsn1&zone=default")
    _, association_id = call(
        "PUT", "/static-ips/associate", f"region=fsn1&zone=default&instanceId={instance_id}&id={ip_id}"
    )
    address = StaticIP.objects.get(pk=ip_id).address
    clock.run(120, until=lambda: state(instance_id) == "running" and server_address(instance_id) == address)
    hetzner_id = StaticIP.objects.get(pk=ip_id).hetzner_id

    answers = []
    answers.append(
        call(
            "PUT",
            "/static-ips/dissociate",
            f"region=fsn1&zone=default&instanceId={instance_id}&id={ip_id}&associationId={association_id}",
        )[0]
    )
    clock.run(rng.uniform(0, 12))  # OctoPerf's next call meets the power cycle wherever it is
    if order == "dissociate, delete, release":
        answers.append(call("DELETE", f"/instances?instanceId={instance_id}")[0])
    answers.append(call("DELETE", f"/static-ips/release?region=fsn1&zone=default&id={ip_id}")[0])
    if order == "dissociate, release, delete":
        answers.append(call("DELETE", f"/instances?instanceId={instance_id}")[0])
    without_ipv4 = False
    if order == "dissociate, release":
        clock.run(60, until=lambda: state(instance_id) == "running")
        without_ipv4 = server_address(instance_id) is None
        answers.append(call("DELETE", f"/instances?instanceId={instance_id}")[0])
    clock.run(120, until=lambda: hetzner_id not in cloud.primary_ips and not cloud.servers)
    return {
        "answered 409": 409 in answers,
        "IP left billed": hetzner_id in cloud.primary_ips,
        "IP left allocated": StaticIP.objects.get(pk=ip_id).status != "released",
        "server left without IPv4": without_ipv4,
    }


def server_address(instance_id: str) -> str | None:
    server = cloud.servers.get(Instance.objects.get(pk=instance_id).hetzner_id)
    ipv4 = server["public_net"]["ipv4"] if server else None
    return ipv4["ip"] if ipv4 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="Runs of each order.")
    parser.add_argument("--latency", type=float, default=0.005, help="Wall-clock seconds each Hetzner answer takes.")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the moments the release falls at.")
    args = parser.parse_args()
    cloud.latency = args.latency
    rng = random.Random(args.seed)
    clock = Clock()
    print(f"{args.runs} runs of each order, {args.latency * 1000:g} ms per Hetzner answer; {machine()}")
    for order in ORDERS:
        counts: dict[str, int] = {}
        for _ in range(args.runs):
            for what, happened in one_run(clock, order, rng).items():
                counts[what] = counts.get(what, 0) + int(happened)
        print(f"{order:30} " + ", ".join(f"{what}: {n}/{args.runs}" for what, n in counts.items()))
    leftovers = len(cloud.servers) + len(cloud.primary_ips)
    print(f"left at Hetzner at the end: {len(cloud.servers)} servers, {len(cloud.primary_ips)} Primary IPs")
    raise SystemExit(1 if leftovers else 0)


if __name__ == "__main__":
    main()
