from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

from octoprovider.core.exceptions import HetznerError
from octoprovider.core.reports import Kind, Outcome
from octoprovider.hetzner.deployment import deployment_label_refusal
from octoprovider.operations.alerts import alerts_check_reconciler
from octoprovider.operations.cleanup import Finding, audit_events_to_prune, cleanup_findings


class Command(BaseCommand):
    help = (
        "Stop what leaks money: delete managed Hetzner servers and Primary IPs the database does not know "
        "(once older than --grace), servers and IPs left behind by terminated or released rows, finish "
        "pending deletes and releases, terminate instances older than INSTANCE_MAX_LIFETIME, and end rows "
        "whose Hetzner resource vanished; prune audit events older than AUDIT_RETENTION_DAYS. Resources "
        "without our labels, or with another deployment's, are never touched. Exits non-zero when Hetzner "
        "could not be listed or an action failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say what would be done; change nothing.")
        parser.add_argument(
            "--grace",
            type=int,
            default=15,
            metavar="MINUTES",
            help="Leave unknown resources younger than this alone: they may be creates in flight (default 15).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=60,
            metavar="SECONDS",
            help="How long to keep trying pending deletes and releases that Hetzner refuses as locked because "
            "another action (a boot, a reboot) runs on the server (default 60).",
        )

    def handle(self, *args, dry_run, grace, wait, verbosity, **options):
        if refusal := deployment_label_refusal():  # another label would orphan the fleet
            raise CommandError(refusal)
        if grace < 0:
            raise CommandError("--grace must be zero or more minutes")
        if wait < 0:
            raise CommandError("--wait must be zero or more seconds")
        if not dry_run:
            alerts_check_reconciler()  # a stalled reconciler cannot say so itself; never raises
        try:
            findings = cleanup_findings(grace=timedelta(minutes=grace), wait=timedelta(seconds=wait))
        except HetznerError as exc:
            raise CommandError(f"Could not list the Hetzner project: {exc.message}") from exc

        if dry_run:
            for finding in findings:
                self.stdout.write(f"would {finding}")
            done, failed = findings, 0
        else:
            done, failed = self._act(findings, verbosity=verbosity)
        self._prune_audit_events(dry_run=dry_run, verbosity=verbosity)

        saved = sum((finding.hourly_price or 0 for finding in done), Decimal(0))
        verb = "would stop" if dry_run else "stopped"
        summary = f"{len(done)} resources {'found' if dry_run else 'cleaned up'}, {verb} {saved:.4f}/h"
        if failed:
            summary += f"; {failed} failed"
        if findings or verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(summary) if not failed else self.style.WARNING(summary))
        if failed:
            raise CommandError(f"{failed} cleanup actions failed")

    def _act(self, findings: list[Finding], *, verbosity: int) -> tuple[list[Finding], int]:
        """Act on each finding and say what came of it; return those done and how many failed."""
        done, failed = [], 0
        for finding in findings:
            try:
                outcome = finding.act()
            except Exception as exc:  # a bug in one item must not stop the others
                outcome = Outcome(Kind.FAILED, f"{type(exc).__name__}: {exc}")
            if outcome.kind is Kind.DONE:
                done.append(finding)
                self.stdout.write(f"{finding}")
            elif outcome.kind is Kind.LEFT_ALONE:
                # Changed since it was listed (a create, a move): right to leave, nothing failed.
                if verbosity >= 1:
                    self.stdout.write(f"left alone: {finding}: {outcome.why}")
            else:  # FAILED; cleanup's acts wait out OWED, and fail what is still owed at --wait
                failed += 1
                self.stderr.write(self.style.ERROR(f"failed to {finding}: {outcome.why}"))
        return done, failed

    def _prune_audit_events(self, *, dry_run: bool, verbosity: int) -> None:
        old_events = audit_events_to_prune()
        if dry_run:
            self.stdout.write(f"would prune {old_events.count()} audit events older than AUDIT_RETENTION_DAYS")
            return
        pruned, _ = old_events.delete()
        if pruned or verbosity >= 2:
            self.stdout.write(f"pruned {pruned} audit events older than AUDIT_RETENTION_DAYS")
