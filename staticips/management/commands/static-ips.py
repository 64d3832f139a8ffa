import json

from django.core.management.base import BaseCommand, CommandError

from octoprovider.core.exceptions import InvalidInput
from octoprovider.hetzner import catalog
from staticips import selectors


class Command(BaseCommand):
    help = (
        "Print the allow-list: the addresses of every allocated static IP, by location. OctoPerf's agents "
        "leave from these; an ipId is only a handle on one of them, so allow a location's whole list."
    )

    def add_arguments(self, parser):
        parser.add_argument("--region", default="", help="Only this region (a location or an alias).")
        parser.add_argument(
            "--json", action="store_true", help='Print {"<location>": ["<address>", ...]} for scripts (firewall rules).'
        )

    def handle(self, *args, region, json: bool, verbosity, **options):
        location = ""
        if region:
            try:
                location = catalog.location_for(region)
            except InvalidInput as exc:  # its message names the known regions
                raise CommandError(str(exc)) from None
        by_location = selectors.static_ip_allow_list(location=location)
        if json:
            self.stdout.write(_dumps({loc: [row.address for row in rows] for loc, rows in by_location.items()}))
            return
        if not by_location:
            self.stdout.write("No static IP is allocated.")
            return
        for loc, rows in by_location.items():
            self.stdout.write(f"{loc} ({len(rows)})")
            for row in rows:
                detail = (
                    f"  {row.id}" + (f"  on {row.on_instance}" if row.on_instance else "") if verbosity >= 2 else ""
                )
                self.stdout.write(f"  {row.address}{detail}")


def _dumps(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
