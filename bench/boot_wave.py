"""Boot wave: 200 instances created at once; how long after the sandbox reports each one running does OctoPerf see it.

    .venv/bin/python bench/boot_wave.py [--creates 200] [--fleet 0]

The sandbox's rate limit is Hetzner's (3600 requests, refilled at one a second). `--fleet N` first
builds N running instances and runs an hour of the reconciler loop over them, so that the wave
lands on a busy project. The creates are sent through the contract at one simulated instant; then
simulated time moves in 0.1 s steps with the reconciler loop's passes (quick every
REFRESH_INTERVAL, sweep every SWEEP_INTERVAL). Each instance's lag is the time between the first
step at which the sandbox reports its server `running` and the first at which the state endpoint
answers `running`.
"""

import argparse
import time
from collections import Counter

from _harness import Reconciler, advance, cloud, create, machine, percentile, settings, state

STEP = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--fleet", type=int, default=0, help="running instances to build first")
    args = parser.parse_args()
    started = time.perf_counter()

    if args.fleet:
        for _ in range(args.fleet):
            assert create()[0] == 200
        reconciler = Reconciler()
        for second in range(3600):
            advance(1)
            reconciler.tick(float(second))
    print(f"machine: {machine()}")
    print(
        f"sandbox rate limit: {cloud.rate_limit} requests, refilled at {cloud.rate_refill_per_second:g}/s; "
        f"{cloud.rate_limit_remaining} left before the wave; fleet before the wave: {args.fleet}"
    )

    first = len(cloud.requests)
    answers = Counter()
    ids = []
    for _ in range(args.creates):
        status, value = create()
        answers[status] += 1
        if status == 200:
            ids.append(value)
    create_requests = cloud.requests[first:]
    too_many = sum(1 for request in create_requests if request.status == 429)
    print(
        f"{args.creates} creates at one instant: OctoPerf got {dict(answers)} "
        f"(503: {answers[503]}, 429: {answers[429]}); Hetzner answered 429 to {too_many} of "
        f"{len(create_requests)} requests; {cloud.rate_limit_remaining} left after"
    )

    sandbox_running, endpoint_running = {}, {}
    reconciler = Reconciler()
    now = 0.0
    while len(endpoint_running) < len(ids) and now < 120:
        for server in cloud.servers.values():
            our_id = server["labels"].get("octoprovider-id")
            if server["status"] == "running" and our_id not in sandbox_running:
                sandbox_running[our_id] = now
        if reconciler.tick(now) is not None:
            for instance_id in ids:
                if instance_id not in endpoint_running and state(instance_id) == "running":
                    endpoint_running[instance_id] = now
        advance(STEP)
        now = round(now + STEP, 6)
    wave_requests = cloud.requests[first:]
    lags = [endpoint_running[i] - sandbox_running[i] for i in ids if i in endpoint_running and i in sandbox_running]

    print(
        f"running as the state endpoint says: {len(endpoint_running)} of {len(ids)} after {now:.1f} s "
        f"(passes every {settings.REFRESH_INTERVAL:g} s)"
    )
    print(
        f"lag after the sandbox reports running: max {max(lags):.1f} s, p99 {percentile(lags, 99):.1f} s, "
        f"p50 {percentile(lags, 50):.1f} s (target: max <= 5 s)"
    )
    print(
        f"Hetzner requests for the wave (creates and refreshes): {len(wave_requests)}; 429 answers: "
        f"{sum(1 for r in wave_requests if r.status == 429)}; {cloud.rate_limit_remaining} left"
    )
    print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
