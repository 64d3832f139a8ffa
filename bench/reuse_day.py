"""Server reuse over a working day of OctoPerf use: billed server-hours and euros with SERVER_REUSE on and off.

    .venv/bin/python bench/reuse_day.py [--seed 25] [--agents 20]

One location (fsn1), SMALL agents, in the sandbox's simulated time, through the contract as OctoPerf
calls it (create, poll the state until `running`, delete at the run's end) with the reconciler loop's
passes every REFRESH_INTERVAL:

- block A: 16 runs of 20 agents, each run 15 minutes, one starting every 30 minutes;
- block B: 8 runs of 20 agents, each 15 minutes, each starting 5 to 90 minutes (at random, seeded)
  after the last one ended.

Each block runs twice, on a fresh database and sandbox: with SERVER_REUSE=billed-hour and with off.
Billed server-hours are counted as Hetzner bills (each started hour of each server, from its creation
to its delete) from the sandbox's own servers, and priced at the sandbox's prices (server and its
IPv4, with VAT). "Alive after deadline": parked servers Hetzner still lists (not deleting) one reconcile
interval after their deadline. "Running after delete": servers still `running` right after their
instance's delete answered. Create-to-running: from the create's answer to the first poll saying
`running`, for instances that took a parked server and for those that created one.
"""

import argparse
import math
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal

from _harness import BASE, cloud, machine, octoperf, settings
from django.core.cache import cache

from instances.models import Instance, ParkedServer
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.hetzner.sandbox import FakeClock, SandboxCloud
from octoprovider.operations.reconciler import reconcile_pass

MINUTE = 60.0
RUN_MINUTES = 15


@dataclass
class Outcome:
    server_hours: int = 0
    eur: Decimal = Decimal(0)
    alive_after_deadline: int = 0
    running_after_delete: int = 0
    to_running_take: list[float] = field(default_factory=list)
    to_running_create: list[float] = field(default_factory=list)


def block_a() -> list[float]:
    return [30 * MINUTE * k for k in range(16)]


def block_b(seed: int) -> list[float]:
    rng = random.Random(seed)
    starts, at = [], 0.0
    for _ in range(8):
        starts.append(at)
        at += RUN_MINUTES * MINUTE + rng.randint(5, 90) * MINUTE
    return starts


class Day:
    """A fresh database and sandbox; simulated time in steps, a reconcile pass every REFRESH_INTERVAL."""

    def __init__(self, reuse: str):
        settings.SERVER_REUSE = reuse
        ParkedServer.objects.all().delete()
        Instance.objects.all().delete()
        cache.clear()
        self.cloud = SandboxCloud(clock=FakeClock(start=cloud.clock.now()))
        hetzner.use_sandbox(self.cloud)
        self.now = 0.0
        self.next_pass = 0.0
        self.next_sweep = 0.0
        self.lives: dict[int, list[float]] = {}  # server id: [created, deleted] (sandbox clock)
        self.late: set[int] = set()
        self.outcome = Outcome()

    def step(self, seconds: float, *, idle: bool = False) -> None:
        """Let `seconds` pass; run the pass the loop would run then (every pass when `idle`: one per step)."""
        self.cloud.clock.advance(seconds)
        clock.advance(seconds)
        self.now += seconds
        if idle or self.now + 1e-9 >= self.next_pass:
            full = self.now + 1e-9 >= self.next_sweep
            if full:
                self.next_sweep = self.now + settings.SWEEP_INTERVAL
            self.next_pass = self.now + settings.REFRESH_INTERVAL
            reconcile_pass(full=full)
        self._watch()

    def idle_until(self, at: float) -> None:
        """Let time pass while nothing is in transition: a pass at each deadline (as the loop's next would be), and
        every 30 s. The loop's passes in between find nothing to do; skipping them keeps the day to minutes."""
        while self.now + 1e-9 < at:
            target = min(at, self.now + 30)
            due = ParkedServer.objects.filter(status=ParkedServer.Status.PARKED).order_by("deadline").first()
            if due is not None:
                deadline = self.now + (due.deadline - clock.now()).total_seconds() + settings.REFRESH_INTERVAL
                if self.now < deadline < target:
                    target = deadline
            if (
                Instance.objects.filter(status__in=Instance.IN_TRANSITION).exists()
                or ParkedServer.objects.filter(
                    status__in=[ParkedServer.Status.PARKING, ParkedServer.Status.TAKING, ParkedServer.Status.DELETING]
                ).exists()
            ):
                target = min(target, self.now + settings.REFRESH_INTERVAL)
            self.step(target - self.now, idle=True)

    def _watch(self) -> None:
        servers = self.cloud._servers  # the sandbox's own record: what Hetzner bills
        for server_id, server in servers.items():
            life = self.lives.setdefault(server_id, [server["created"], None])
            if server["deleted_at"] is not None:
                life[1] = server["deleted_at"]
        slack = settings.REFRESH_INTERVAL + 1
        now = clock.now().timestamp()
        for row in ParkedServer.objects.filter(status__in=ParkedServer.HOLDING, deadline__lt=clock.now()):
            server = servers.get(row.hetzner_id)
            if server is not None and server["deleted_at"] is None and now > row.deadline.timestamp() + slack:
                self.late.add(row.hetzner_id)

    def run(self, agents: int) -> None:
        """One test: create the agents, poll them until running, delete them all 15 minutes after the start."""
        started = self.now
        created = {}
        for _ in range(agents):
            response = octoperf.post(
                f"{BASE}/instances",
                "userData=%23!%2Fbin%2Fsh&region=fsn1&type=SMALL",
                content_type="application/x-www-form-urlencoded; charset=UTF-8",
            )
            assert response.status_code == 200, response.content
            created[response.json()["value"]] = self.now
        taken = set(ParkedServer.objects.filter(taken_by__in=list(created)).values_list("taken_by", flat=True))
        waiting = dict(created)
        while waiting:
            self.step(0.5)
            for instance_id in list(waiting):
                answer = octoperf.get(f"{BASE}/instances/{instance_id}/state").json()["value"]
                if answer == "running":
                    seconds = self.now - waiting.pop(instance_id)
                    (self.outcome.to_running_take if instance_id in taken else self.outcome.to_running_create).append(
                        seconds
                    )
            assert self.now - started < 300, "agents never ran"
        self.idle_until(started + RUN_MINUTES * MINUTE)
        for instance_id in created:
            assert octoperf.delete(f"{BASE}/instances?instanceId={instance_id}").status_code == 200
            server_id = Instance.objects.get(pk=instance_id).hetzner_id
            server = self.cloud._servers.get(server_id)
            if server is not None and self.cloud._server_status(server) == "running":
                self.outcome.running_after_delete += 1

    def finish(self) -> Outcome:
        """Let the last parked servers reach their deadline, then bill every server's started hours."""
        self.idle_until(self.now + 65 * MINUTE)
        assert not any(s["deleted_at"] is None for s in self.cloud._servers.values()), "a server outlived the day"
        price = hetzner.hourly_prices().instance("cx23", "fsn1", own_ipv4=True).hourly
        for created, deleted in self.lives.values():
            hours = max(1, math.ceil((deleted - created) / 3600))
            self.outcome.server_hours += hours
            self.outcome.eur += hours * price
        self.outcome.alive_after_deadline = len(self.late)
        return self.outcome


def simulate(starts: list[float], *, reuse: str, agents: int) -> Outcome:
    day = Day(reuse)
    for start in starts:
        day.idle_until(start)
        day.run(agents)
    return day.finish()


def mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.1f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=25, help="the seed of block B's gaps")
    parser.add_argument("--agents", type=int, default=20)
    args = parser.parse_args()
    wall = time.perf_counter()
    blocks = {"A": block_a(), "B": block_b(args.seed)}
    gaps = [
        round((later - earlier) / MINUTE) - RUN_MINUTES
        for earlier, later in zip(blocks["B"], blocks["B"][1:], strict=False)
    ]
    print(f"machine: {machine()}")
    print(f"block B's gaps after each run (minutes, seed {args.seed}): {gaps}")
    header = (
        f"{'block':<6}{'SERVER_REUSE':<13}{'server-h':>9}{'EUR':>9}{'ratio':>7}{'alive>dl':>9}{'run>del':>8}"
        f"{'takes':>7}{'take->run s':>12}{'create->run s':>14}"
    )
    print(header)
    for name, starts in blocks.items():
        off = simulate(starts, reuse="off", agents=args.agents)
        on = simulate(starts, reuse="billed-hour", agents=args.agents)
        for label, outcome in (("billed-hour", on), ("off", off)):
            print(
                f"{name:<6}{label:<13}{outcome.server_hours:>9}{outcome.eur:>9.2f}"
                f"{outcome.server_hours / off.server_hours:>7.2f}{outcome.alive_after_deadline:>9}"
                f"{outcome.running_after_delete:>8}{len(outcome.to_running_take):>7}"
                f"{mean(outcome.to_running_take):>12}{mean(outcome.to_running_create):>14}"
            )
        goal = on.server_hours <= (0.55 if name == "A" else 1.0) * off.server_hours
        print(f"  goal for block {name} ({'<= 0.55 x' if name == 'A' else '<='} off): {'met' if goal else 'MISSED'}")
    print(f"wall time: {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
