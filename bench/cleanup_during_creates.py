"""Cleanup during a test start: how many cleanup runs end an instance nobody deleted, how many are lost.

    .venv/bin/python bench/cleanup_during_creates.py [--runs 8] [--get-latency 0.3] [--create-every 0.3]

The audit's scenario (issue 20, item 1): every Hetzner GET takes `--get-latency` seconds (wall
clock, in the sandbox), OctoPerf creates an instance every `--create-every` seconds from a thread of
its own, and `manage.py cleanup` runs `--runs` times back to back meanwhile. An instance is lost
when it ends `terminated` or `shutting-down` though nobody deleted it. Prints, per run, the
instances it ended, then the totals. Exits non-zero when an instance was lost.
"""

import argparse
import contextlib
import io
import sys
import threading

from _harness import cloud, create
from django.core.management import CommandError, call_command
from django.db import connection

from instances.models import Instance


def ended(ids: list[str]) -> set[str]:
    return set(Instance.objects.filter(pk__in=ids, status__in=["terminated", "deleting"]).values_list("pk", flat=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="cleanup runs (default 8)")
    parser.add_argument("--get-latency", type=float, default=0.3, help="seconds per Hetzner GET (default 0.3)")
    parser.add_argument("--create-every", type=float, default=0.3, help="seconds between creates (default 0.3)")
    args = parser.parse_args()

    create()  # something for the first listing to show
    cloud.slow_down("GET", r".*", seconds=args.get_latency)
    stop = threading.Event()
    created: list[str] = []
    refused: list[str] = []

    def octoperf_starts_a_test() -> None:
        try:
            while not stop.is_set():
                status, value = create()
                (created if status == 200 else refused).append(value)
                stop.wait(args.create_every)
        finally:
            connection.close()

    creator = threading.Thread(target=octoperf_starts_a_test)
    creator.start()
    runs_ending_live = 0
    lost: set[str] = set()
    try:
        for number in range(1, args.runs + 1):
            before = ended(list(created))
            out = io.StringIO()
            # --wait 0: a delete Hetzner holds back as locked is not waited for (simulated time stands still).
            # A failed action (a locked delete) is said in its output; what counts is what it ended.
            with contextlib.suppress(CommandError):
                call_command("cleanup", "--wait", "0", stdout=out, stderr=out)
            now_ended = ended(list(created)) - before
            lost |= now_ended
            runs_ending_live += bool(now_ended)
            print(f"cleanup run {number}: ended {len(now_ended)} live instances")
    finally:
        stop.set()
        creator.join(timeout=60)
    lost |= ended(created)
    print(
        f"{runs_ending_live} of {args.runs} cleanup runs ended a live instance; "
        f"{len(lost)} of {len(created)} instances created were lost"
        + (f" ({len(refused)} creates refused: {sorted(set(refused))})" if refused else "")
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
