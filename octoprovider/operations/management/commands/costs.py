import json as jsonlib
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date

from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.operations.costing import RUNS_DEFAULT_DAYS, runs, saved_by_reuse_per_day, unclaimed


class Command(BaseCommand):
    help = (
        f"Print the test runs started since a date ({RUNS_DEFAULT_DAYS} days ago by default; creates in one region "
        "less than RUN_GAP seconds apart) "
        "with what each cost at Hetzner's prices: instances, billed instance-hours, euros for servers, "
        "their IPv4s and static IPs, the billed minutes nobody used and the euros server reuse saved; "
        "then the instances OctoPerf never "
        "claimed and the static IPs it never used. Reads only; changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            metavar="DATE",
            help=f"The first day (YYYY-MM-DD, UTC) whose runs to print; by default {RUNS_DEFAULT_DAYS} days ago, "
            "as the console's runs page.",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object (runs and totals).")

    def handle(self, *args, since: str | None, json: bool, verbosity, **options):
        if since is None:
            since = (clock.now() - timedelta(days=RUNS_DEFAULT_DAYS)).date().isoformat()
        try:
            day = parse_date(since) if since else None
        except ValueError:  # well formed, but no day: 2026-02-30, 2026-13-01
            day = None
        if day is None:
            raise CommandError(f"--since must be a date like 2026-05-01, not {since!r}")
        start = datetime.combine(day, time.min, tzinfo=UTC)
        try:
            # Each asks Hetzner's prices (once: the gateway caches them) only if it has something to price.
            found = runs(since=start)
            waste = unclaimed(since=start)
        except HetznerError as exc:
            raise CommandError(f"Could not read Hetzner's prices: {exc.message}") from exc
        total = sum((run.total_eur for run in found), Decimal(0))
        if json:
            self._print_json(found, total, waste)
            return
        self.stdout.write(
            f"{'region':<10} {'start (UTC)':<19} {'end (UTC)':<19} {'inst':>5} {'inst-h':>7} {'servers':>9} "
            f"{'IPv4s':>8} {'static':>8} {'total EUR':>10} {'unused min':>10} {'saved EUR':>9}"
        )
        for run in found:
            end = run.end.strftime("%Y-%m-%d %H:%M:%S") if run.end else "running"
            self.stdout.write(
                f"{run.region:<10} {run.start:%Y-%m-%d %H:%M:%S} {end:<19} {run.instances:>5} {run.instance_hours:>7} "
                f"{run.servers_eur:>9.4f} {run.ipv4s_eur:>8.4f} {run.static_ips_eur:>8.4f} {run.total_eur:>10.4f} "
                f"{run.unused_minutes:>10} {run.saved_by_reuse_eur:>9.4f}"
            )
        if verbosity >= 1:
            self.stdout.write(f"{len(found)} runs since {day} (RUN_GAP {settings.RUN_GAP} s), {total:.4f} EUR")
        saved = saved_by_reuse_per_day(found)
        self.stdout.write(
            "Saved by reuse (SERVER_REUSE): "
            + (", ".join(f"{date} {eur:.4f} EUR" for date, eur in saved.items()) or "nothing")
            + f"; {sum(saved.values(), Decimal(0)):.4f} EUR in all"
        )
        # What OctoPerf never learned of: creates and allocates whose answer it did not receive.
        self.stdout.write(
            f"Never claimed: {waste.instances} instances since {day} (OctoPerf never called about them), "
            f"{waste.instances_eur:.4f} EUR, counted in the runs above"
        )
        advice = " (release them if nobody will)" if waste.static_ips else ""
        self.stdout.write(
            f"Never used: {waste.static_ips} static IPs allocated and never associated, "
            f"{waste.static_ips_eur_per_hour:.4f} EUR/h now{advice}"
        )

    def _print_json(self, found, total, waste):
        self.stdout.write(
            json_dumps(
                {
                    "run_gap_seconds": settings.RUN_GAP,
                    "runs": [run.as_json() for run in found],
                    "total_eur": str(total),
                    "saved_by_reuse_per_day": {date: str(eur) for date, eur in saved_by_reuse_per_day(found).items()},
                    "unclaimed": waste.as_json(),
                }
            )
        )


def json_dumps(value) -> str:
    return jsonlib.dumps(value, indent=2)
