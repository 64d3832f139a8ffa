import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from octoprovider import hetzner
from octoprovider.operations.reconciler import reconcile_pass


class Command(BaseCommand):
    help = (
        "Bring the database in line with Hetzner: record server states and finish interrupted work. "
        "One pass by default; --loop keeps going until SIGTERM or SIGINT, finishing the current step. "
        "Passes wait while Hetzner's rate budget is below HCLOUD_RATE_RESERVE, and say so."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep reconciling until stopped.")
        parser.add_argument(
            "--interval", type=float, default=settings.REFRESH_INTERVAL,
            help="Seconds between passes with --loop (default REFRESH_INTERVAL, %(default)s).",
        )
        parser.add_argument(
            "--sweep-interval", type=float, default=settings.SWEEP_INTERVAL,
            help="Seconds between full passes, which sweep the whole fleet for drift (default SWEEP_INTERVAL, "
            "%(default)s); the passes between look only at instances in transition. A sweep costs two Hetzner "
            "requests; the fleet is listed in full only when they disagree with the database, or every "
            "SWEEP_FULL_INTERVAL seconds.",
        )

    def handle(self, *args, loop, interval, sweep_interval, verbosity, **options):
        self.stopping = False
        if loop:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
            if hetzner.is_sandbox():
                # The one place `make run` says so: the web server and this loop share the file.
                self.stdout.write(
                    "Hetzner: the built-in simulated cloud (no HCLOUD_TOKEN set), its state in "
                    f"{settings.HCLOUD_SANDBOX_FILE.resolve()}: nothing real is created or billed."
                )
        last_sweep = None
        while True:
            full = not loop or last_sweep is None or time.monotonic() - last_sweep >= sweep_interval
            if full:
                last_sweep = time.monotonic()
            report = reconcile_pass(full=full)
            if verbosity >= 2 or (verbosity >= 1 and (report.changed or report.actions or not loop)):
                self.stdout.write(
                    f"{'full' if full else 'quick'} pass: {report.observed} observed, {report.changed} changed, "
                    f"{report.terminated} terminated, {len(report.actions)} actions, "
                    f"{report.hetzner_calls} Hetzner calls"
                )
            for error in report.errors:
                self.stderr.write(self.style.WARNING(error))
            if not loop:
                return
            deadline = time.monotonic() + interval
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(min(0.2, interval))
            if self.stopping:
                self.stdout.write("Stopped.")
                return

    def _stop(self, signum, frame):
        self.stopping = True
