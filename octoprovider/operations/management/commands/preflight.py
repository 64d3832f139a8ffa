from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from octoprovider.operations.preflight import preflight_run


class Command(BaseCommand):
    help = (
        "Check a deployment before its units are enabled: placeholder or short secrets, DEBUG, Django's "
        "deployment checks, the database's migrations, ALLOWED_REGIONS, and the Hetzner project (the token "
        "accepted, the SSH keys, firewalls and image of the settings present). Prints the project reached "
        "(servers, rate limit left) and what the caps let it bill an hour; one line per problem, and exits "
        "non-zero when there is any."
    )
    # It runs the system checks itself, deployment checks included, and reports them as problems.
    requires_system_checks = []

    def handle(self, *args, **options):
        report = preflight_run()

        if report.project is not None:
            project = report.project
            rate = (
                f"{project.rate_remaining} of {project.rate_limit} API requests left this hour"
                if project.rate_limit is not None
                else "rate limit not reported"
            )
            self.stdout.write(
                f"Hetzner project reached: {_count(project.servers)} servers "
                f"({_count(project.ours)} of this deployment's), {rate}"
            )
        else:
            self.stdout.write(f"Hetzner project: not asked ({report.hetzner_not_asked})")
        if report.cost is not None:
            cost = report.cost
            vat = "VAT included" if cost.vat else "without VAT"
            self.stdout.write(
                f"Billed at the caps: at most {cost.per_hour:.4f} {cost.currency} an hour ({vat}): "
                f"MAX_INSTANCES={settings.MAX_INSTANCES} x ({cost.server_type} in {cost.location} "
                f"{cost.server_price:.4f} + IPv4 {cost.instance_ipv4_price:.4f}) + "
                f"MAX_STATIC_IPS={settings.MAX_STATIC_IPS} x IPv4 {cost.static_ipv4_price:.4f}"
            )
            if settings.MAX_HOURLY_SPEND_EUR is not None:
                self.stdout.write(f"MAX_HOURLY_SPEND_EUR stops creates at {settings.MAX_HOURLY_SPEND_EUR} an hour")

        for problem in report.problems:
            self.stderr.write(self.style.ERROR(f"problem: {problem}"))
        if report.problems:
            raise CommandError(f"{len(report.problems)} problems: fix them, then run preflight again")
        self.stdout.write(self.style.SUCCESS("No problems: the units can be enabled."))


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)
