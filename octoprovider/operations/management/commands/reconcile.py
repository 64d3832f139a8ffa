import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from octoprovider import hetzner
from octoprovider.core.reports import PassReport
from octoprovider.operations.reconciler import reconcile_once, reconcile_pass


class Command(BaseCommand):
    help = (
        "Bring the database in line with Hetzner: record server states and finish interrupted work. "
        "One pass by default, which waits up to --wait seconds for deletes and releases Hetzner holds back "
        "while another action runs (locked), and exits non-zero when Hetzner could not be reached or work is "
        "left undone; --loop keeps going until SIGTERM or SIGINT, finishing the current step. "
        "Passes wait while Hetzner's rate budget is below HCLOUD_RATE_RESERVE, and say so."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep reconciling until stopped.")
        parser.add_argument(
            "--interval", type=float, default=settings.REFRESH_INTERVAL,
            help="Seconds between passes with --loop, and between the tries of a one-shot run waiting out "
            "locked (default REFRESH_INTERVAL, %(default)s).",
        )
        parser.add_argument(
            "--wait", type=float, default=60, metavar="SECONDS",
            help="Without --loop: how long to keep trying deletes, releases and reboots that Hetzner refused "
            "as locked because another action (a boot, a reboot) was running on the server (default 60).",
        )
        parser.add_argument(
            "--sweep-interval", type=float, default=settings.SWEEP_INTERVAL,
            help="Seconds between full passes, which sweep the whole fleet for drift (default SWEEP_INTERVAL, "
            "%(default)s); the passes between look only at instances in transition. A sweep costs two Hetzner "
            "requests; the fleet is listed in full only when they disagree with the database, or every "
            "SWEEP_FULL_INTERVAL seconds.",
        )

    def handle(self, *args, loop, interval, sweep_interval, wait, verbosity, **options):
        if not loop:
            self._once(wait=wait, interval=interval, verbosity=verbosity)
            return
        self.stopping = False
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
            full = last_sweep is None or time.monotonic() - last_sweep >= sweep_interval
            if full:
                last_sweep = time.monotonic()
            report = reconcile_pass(full=full)
            if verbosity >= 2 or (verbosity >= 1 and (report.changed or report.actions)):
                self._say(report, full=full)
            for error in report.errors:
                self.stderr.write(self.style.WARNING(error))
            deadline = time.monotonic() + interval
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(min(0.2, interval))
            if self.stopping:
                self.stdout.write("Stopped.")
                return

    def _once(self, *, wait, interval, verbosity):
        """Run one pass (waiting out locked), and fail so that cron and systemd see what is left undone."""
        report = None
        for number, report in enumerate(reconcile_once(wait=wait, interval=interval)):
            if verbosity >= 1:
                self._say(report, full=number == 0)
            if report.locked and verbosity >= 1:
                self.stdout.write(f"locked by running Hetzner actions: {', '.join(report.locked)}")
        for error in report.errors:
            self.stderr.write(self.style.WARNING(error))
        if report.errors:
            raise CommandError(f"the reconcile pass failed: {report.errors[0]}")
        if report.locked:
            raise CommandError(
                f"still locked by running Hetzner actions after {wait:g} s: {', '.join(report.locked)}; "
                "the next pass finishes them"
            )

    def _say(self, report: PassReport, *, full: bool) -> None:
        self.stdout.write(
            f"{'full' if full else 'quick'} pass: {report.observed} observed, {report.changed} changed, "
            f"{report.terminated} terminated, {len(report.actions)} actions, "
            f"{report.hetzner_calls} Hetzner calls"
        )

    def _stop(self, signum, frame):
        self.stopping = True
