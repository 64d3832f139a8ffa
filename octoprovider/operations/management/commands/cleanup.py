from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

from octoprovider.core.exceptions import HetznerError
from octoprovider.hetzner.deployment import deployment_label_refusal
from octoprovider.operations.alerts import alerts_check_reconciler
from octoprovider.operations.cleanup import LeftAlone, audit_events_to_prune, cleanup_findings


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

        done, failed, saved = 0, 0, Decimal(0)
        for finding in findings:
            if dry_run:
                self.stdout.write(f"would {finding}")
            else:
                try:
                    finding.act()
                except LeftAlone as exc:
                    # Changed since it was listed (a create, a move): right to leave, nothing failed.
                    if verbosity >= 1:
                        self.stdout.write(f"left alone: {finding}: {exc}")
                    continue
                except Exception as exc:  # one item's failure must not stop the others
                    failed += 1
                    self.stderr.write(self.style.ERROR(f"failed to {finding}: {exc}"))
                    continue
                self.stdout.write(f"{finding}")
            done += 1
            saved += finding.hourly_price or 0
        old_events = audit_events_to_prune()
        if dry_run:
            self.stdout.write(f"would prune {old_events.count()} audit events older than AUDIT_RETENTION_DAYS")
        else:
            pruned, _ = old_events.delete()
            if pruned or verbosity >= 2:
                self.stdout.write(f"pruned {pruned} audit events older than AUDIT_RETENTION_DAYS")

        verb = "would stop" if dry_run else "stopped"
        summary = f"{done} resources {'found' if dry_run else 'cleaned up'}, {verb} {saved:.4f}/h"
        if failed:
            summary += f"; {failed} failed"
        if findings or verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(summary) if not failed else self.style.WARNING(summary))
        if failed:
            raise CommandError(f"{failed} cleanup actions failed")
