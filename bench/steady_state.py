"""Steady state: how many Hetzner requests an hour a fleet of running instances costs while OctoPerf polls it.

    .venv/bin/python bench/steady_state.py [--instances 1000] [--minutes 60] [--poll-every 5]

Creates the fleet through the contract, lets it boot, then simulates `--minutes` of the reconciler
loop (quick passes every REFRESH_INTERVAL, sweeps every SWEEP_INTERVAL) while every instance's state
is polled through the contract every `--poll-every` seconds. Counts what reached the sandbox.
The window starts right after the sweep that listed the fleet, so a one-hour window holds exactly
one more full listing (SWEEP_FULL_INTERVAL, default 3600 s), as every hour of a long run does.
"""

import argparse
import time
from collections import Counter

from _harness import Reconciler, advance, cloud, create, machine, settings, state


def kind_of(request) -> str:
    if request.method != "GET" or request.path != "/servers":
        return f"{request.method} {request.path}"
    if "status" in request.query:
        return "GET /servers?status=<not running> (sweep)"
    if request.query.get("per_page") == ["1"]:
        return "GET /servers?per_page=1 (sweep: count)"
    if " in (" in request.query["label_selector"][0]:
        return "GET /servers?label_selector=...in(ids) (quick)"
    return "GET /servers (full listing page)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes measured (at least 5)")
    parser.add_argument("--poll-every", type=float, default=5.0, help="simulated seconds between polls of one instance")
    args = parser.parse_args()
    started = time.perf_counter()

    ids = []
    for _ in range(args.instances):
        status, value = create()
        assert status == 200, value
        ids.append(value)
    advance(60)
    reconciler = Reconciler()
    reconciler.tick(0.0)  # the first pass is a sweep: it lists the fleet (no listing was ever made)
    assert {state(instance_id) for instance_id in ids} == {"running"}
    advance(60)  # let the bucket refill from the creates; not measured

    first, base = len(cloud.requests), cloud.request_count
    polls = poll_requests = 0
    window = args.minutes * 60
    step = 1.0
    now, next_poll = 0.0, 0.0
    reconciler = Reconciler()
    reconciler.next_quick = settings.REFRESH_INTERVAL
    reconciler.next_full = settings.SWEEP_INTERVAL  # the listing above was this window's first sweep
    while now < window:
        advance(step)
        now += step
        reconciler.tick(now)
        if now + 1e-9 >= next_poll:
            next_poll = now + args.poll_every
            before = cloud.request_count
            states = Counter(state(instance_id) for instance_id in ids)
            poll_requests += cloud.request_count - before
            polls += len(ids)
    spent = cloud.request_count - base
    kinds = Counter(kind_of(request) for request in cloud.requests[first:])
    per_hour = spent * 3600 / window

    print(f"machine: {machine()}")
    print(f"fleet: {args.instances} instances, states at the end: {dict(states)}")
    print(
        f"simulated: {args.minutes:g} min; {len(reconciler.passes)} reconcile passes "
        f"({sum(full for _, full, _ in reconciler.passes)} sweeps); {polls} state polls, one every "
        f"{args.poll_every:g} s per instance; Hetzner requests made by polls: {poll_requests}"
    )
    print(f"Hetzner requests in the window: {spent}")
    for kind, count in kinds.most_common():
        print(f"  {count:6d}  {kind}")
    print(f"Hetzner requests per hour: {per_hour:.0f} (target <= 360)")
    print(f"sandbox budget left at the end: {cloud.rate_limit_remaining} / {cloud.rate_limit}")
    print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
