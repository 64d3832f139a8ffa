import contextlib
import signal
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import Error, InterfaceError, OperationalError, connection

from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.reports import PassReport
from octoprovider.hetzner.deployment import deployment_label_refusal
from octoprovider.operations.cloud import real_cloud_line
from octoprovider.operations.reconciler import reconcile_once, reconcile_pass

# What a database that went away raises: the server restarting or failing over, the network, a
# connection it killed. Anything else is a bug and ends the loop.
DATABASE_DOWN = (OperationalError, InterfaceError)
# Seconds at most between two tries while the database is down, or Hetzner cannot be listed.
MAX_BACKOFF = 60.0


@dataclass
class _Streak:
    """What the loop keeps from one pass to the next."""

    last_sweep: float | None = None  # on clock.monotonic(); None: the next pass sweeps in full
    database_failures: int = 0  # passes the database failed in a row
    hetzner_failures: int = 0  # passes stopped early by Hetzner in a row


class Command(BaseCommand):
    help = (
        "Bring the database in line with Hetzner: record server states and finish interrupted work. "
        "One pass by default, which waits up to --wait seconds for deletes and releases Hetzner holds back "
        "while another action runs (locked), and exits non-zero when Hetzner could not be reached or work is "
        "left undone; --loop keeps going until SIGTERM or SIGINT, finishing the current step. "
        "Passes wait while Hetzner's rate budget is below HCLOUD_RATE_RESERVE, and say so; while the database is "
        "unavailable, or Hetzner cannot be listed, the loop waits longer each time (doubling the wait up to a "
        "minute), says so once a pass, and carries on at --interval once it answers again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep reconciling until stopped.")
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.REFRESH_INTERVAL,
            help="Seconds between passes with --loop, and between the tries of a one-shot run waiting out "
            "locked (default REFRESH_INTERVAL, %(default)s).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=60,
            metavar="SECONDS",
            help="Without --loop: how long to keep trying deletes, releases and reboots that Hetzner refused "
            "as locked because another action (a boot, a reboot) was running on the server (default 60).",
        )
        parser.add_argument(
            "--sweep-interval",
            type=float,
            default=settings.SWEEP_INTERVAL,
            help="Seconds between full passes, which sweep the whole fleet for drift (default SWEEP_INTERVAL, "
            "%(default)s); the passes between look only at instances in transition. A sweep costs two Hetzner "
            "requests; the fleet is listed in full only when they disagree with the database, or every "
            "SWEEP_FULL_INTERVAL seconds.",
        )

    def handle(self, *args, loop, interval, sweep_interval, wait, verbosity, **options):
        if refusal := deployment_label_refusal():  # another label would orphan the fleet
            raise CommandError(refusal)
        if not options["skip_checks"]:
            # The settings Hetzner must know (SSH keys, firewalls, image): a deployment check tagged
            # "hetzner" (octoprovider/checks.py), which the other commands skip: only those that need
            # Hetzner call it.
            self.check(tags=["hetzner"], include_deployment_checks=True)
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
        else:
            # A real token may be there by mistake (one exported for the hcloud CLI): say it loudly.
            self.stdout.write(self.style.ERROR(real_cloud_line()))
        self._loop(interval=interval, sweep_interval=sweep_interval, verbosity=verbosity)

    def _loop(self, *, interval: float, sweep_interval: float, verbosity: int) -> None:
        """Run passes, a full one every `sweep_interval` seconds, until SIGTERM or SIGINT.

        Intervals are measured on the service's clock (`core.clock`), so tests run the loop on simulated time.
        """
        streak = _Streak()
        while True:
            full = streak.last_sweep is None or clock.monotonic() - streak.last_sweep >= sweep_interval
            try:
                report = reconcile_pass(full=full)
            except DATABASE_DOWN as exc:
                delay = self._database_down(exc, interval=interval, streak=streak)
            else:
                delay = self._after_pass(report, full=full, interval=interval, streak=streak, verbosity=verbosity)
            if self._wait(delay):
                return

    def _database_down(self, exc: Exception, *, interval: float, streak: _Streak) -> float:
        """Say that the database is unavailable and drop the connection; return how long to wait."""
        # A database restart or failover must not end the loop (nothing would move after
        # it): wait, longer each time, and reconnect. The pass after it sweeps in full.
        streak.database_failures += 1
        delay = _backoff(interval, streak.database_failures)
        self.stderr.write(
            self.style.ERROR(
                f"The database is unavailable ({type(exc).__name__}: {_first_line(exc)}); next try in {delay:.3g} s"
            )
        )
        _drop_connection()
        streak.last_sweep = None
        return delay

    def _after_pass(self, report: PassReport, *, full: bool, interval: float, streak: _Streak, verbosity: int) -> float:
        """Say what the pass did and what failed; return how long to wait before the next one."""
        if full:
            streak.last_sweep = clock.monotonic()
        if streak.database_failures:
            self.stdout.write(f"The database is back after {streak.database_failures} failed passes.")
            streak.database_failures = 0
        if verbosity >= 2 or (verbosity >= 1 and (report.changed or report.actions)):
            self._say(report, full=full)
        delay = interval
        if report.stopped:
            # Hetzner unreachable, or answering what cannot be read: trying every --interval
            # would only fill the logs and spend the rate budget. The pass after it sweeps in full.
            streak.hetzner_failures += 1
            delay = _backoff(interval, streak.hetzner_failures)
            streak.last_sweep = None
        elif streak.hetzner_failures:
            self.stdout.write(f"Hetzner answers again after {streak.hetzner_failures} failed passes.")
            streak.hetzner_failures = 0
        for error in report.errors:
            if error == report.stopped:
                error += f"; next pass in {delay:.3g} s"
            self.stderr.write(self.style.WARNING(error))
        return delay

    def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking on SIGTERM/SIGINT; return True (having said so) when asked to stop."""
        # Counted in the service's sleeps, not read off a clock: the wall clock may jump, and tests let
        # simulated time pass instead of sleeping through a backoff.
        waited = 0.0
        while not self.stopping and waited < seconds:
            step = min(0.2, seconds - waited)
            clock.sleep(step)
            waited += step
        if self.stopping:
            self.stdout.write("Stopped.")
        return self.stopping

    def _once(self, *, wait, interval, verbosity):
        """Run one pass (waiting out locked), and fail so that cron and systemd see what is left undone."""
        report = None
        try:
            for number, report in enumerate(reconcile_once(wait=wait, interval=interval)):
                if verbosity >= 1:
                    self._say(report, full=number == 0)
                if report.locked and verbosity >= 1:
                    self.stdout.write(f"locked by running Hetzner actions: {', '.join(report.locked)}")
        except DATABASE_DOWN as exc:
            raise CommandError(f"The database is unavailable: {_first_line(exc)}") from exc
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


def _backoff(interval: float, failures: int) -> float:
    """Return the wait after `failures` failed passes in a row: twice --interval, doubling, a minute at most."""
    return min(interval * 2**failures, MAX_BACKOFF)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _drop_connection() -> None:
    """Close this process's database connection, broken or not, so that the next query opens a new one."""
    with contextlib.suppress(Error):
        connection.close()
