from django.core.management.base import BaseCommand, CommandError

from octoprovider.core.exceptions import HetznerError
from octoprovider.hetzner.deployment import deployment_relabel, is_label_value


class Command(BaseCommand):
    help = (
        "Move this database's fleet to another OCTOPROVIDER_DEPLOYMENT label: relabel every server and Primary IP "
        "at Hetzner labelled with the recorded one, then record the new label. Stop the web and reconciler "
        "units first; set OCTOPROVIDER_DEPLOYMENT to the new label before starting them again (docs/deployment.md)."
    )
    # The system checks refuse a changed label: this command is the way out of that refusal.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--to", required=True, metavar="LABEL", help="The new label value (1-63 letters, digits, '-', '_', '.')."
        )
        parser.add_argument(
            "--from",
            dest="old",
            metavar="LABEL",
            default=None,
            help="The label the fleet carries now; by default the one recorded in the database "
            "(or OCTOPROVIDER_DEPLOYMENT before any was recorded).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be relabelled; change nothing at Hetzner nor in the database.",
        )

    def handle(self, *args, to, old, dry_run, verbosity, **options):
        for option, value in (("--to", to), ("--from", old)):
            if value is not None and not is_label_value(value):
                raise CommandError(
                    f"{option} must be a valid Hetzner label value (1-63 letters, digits, '-', '_', '.'), not {value!r}"
                )
        new = to
        try:
            done = deployment_relabel(new=new, old=old, dry_run=dry_run)
        except HetznerError as exc:
            raise CommandError(f"Could not list the Hetzner project: {exc.message}") from exc
        if done.old == new:
            self.stdout.write(f"The fleet is labelled {new!r} already: nothing to do.")
            return
        if verbosity >= 2 or dry_run:
            for name in done.servers + done.primary_ips:
                self.stdout.write(f"{'would relabel' if dry_run else 'relabelled'} {name}")
        counts = f"{len(done.servers)} servers and {len(done.primary_ips)} Primary IPs"
        if dry_run:
            self.stdout.write(f"Dry run: {counts} would move from {done.old!r} to {new!r}.")
            return
        for failure in done.failures:
            self.stderr.write(f"failed: {failure}")
        if done.left_behind:
            self.stderr.write(
                f"{done.left_behind} resources appeared under {done.old!r} meanwhile: is a web or "
                "reconciler process still running?"
            )
        if not done.complete:
            raise CommandError(f"The label stays {done.old!r}: run the command again to finish the move.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Moved {counts} from {done.old!r} to {new!r}. Now set OCTOPROVIDER_DEPLOYMENT={new} and start "
                "the web and reconciler units."
            )
        )
