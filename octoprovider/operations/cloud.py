"""Which Hetzner Cloud this process talks to, said where a person sees it: `make run`, the reconciler's
start, the console.

Hetzner's API does not name the project a token belongs to. What identifies it is what the token sees:
the servers in the project, how many of them are this deployment's (its label), the API endpoint and
the rate budget left. A real token means real, billed servers: whoever starts octoprovider with one by
mistake (an `HCLOUD_TOKEN` exported for the hcloud CLI) must hear it at once.
"""

from dataclasses import dataclass

from django.conf import settings

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core.exceptions import HetznerError
from octoprovider.hetzner import budget


@dataclass(frozen=True)
class Project:
    """The Hetzner project HCLOUD_TOKEN reaches: its servers, this deployment's, and the rate budget left."""

    servers: int | None
    ours: int | None
    rate_remaining: int | None
    rate_limit: int | None


def project_seen() -> Project:
    """Ask Hetzner how many servers the project has and how many are ours (two requests; raises HetznerError)."""
    servers = hetzner.count_servers(label_selector=None)
    ours = hetzner.count_servers(label_selector=hetzner.managed_selector())
    left = budget.snapshot()
    return Project(
        servers=servers,
        ours=ours,
        rate_remaining=left["remaining"] if left else None,
        rate_limit=left["limit"] if left else None,
    )


def real_cloud_line() -> str:
    """Describe the real Hetzner project behind HCLOUD_TOKEN in one line (two Hetzner requests).

    Never raises for Hetzner's sake: an unreachable API or a refused token is said in the line.
    """
    where = (
        f"the REAL Hetzner Cloud at {settings.HCLOUD_ENDPOINT}, deployment label {settings.OCTOPROVIDER_DEPLOYMENT!r}"
    )
    try:
        seen = project_seen()
    except HetznerError as exc:
        project = f"the project of HCLOUD_TOKEN could not be asked ({exc.hetzner_code or 'no answer'})"
    else:
        project = (
            f"the project of HCLOUD_TOKEN has {_count(seen.servers)} servers, {_count(seen.ours)} of them this "
            "deployment's"
        )
        if seen.rate_limit is not None:
            project += f", {seen.rate_remaining} of {seen.rate_limit} API requests left"
    return f"Hetzner: {where}; {project}. Servers are billed: every instance created here costs money."


def real_cloud_banner() -> dict | None:
    """Return what the console's banner says of a real Hetzner project (no Hetzner request), or None.

    Shown while DEBUG is on, as with `make run`, where a real token is the surprise; a production
    console always talks to the real project, and its operators know.
    """
    if hetzner.is_sandbox() or not settings.DEBUG:
        return None
    return {
        "endpoint": settings.HCLOUD_ENDPOINT,
        "deployment": settings.OCTOPROVIDER_DEPLOYMENT,
        "instances": Instance.objects.filter(status__in=Instance.LIVE).count(),
    }


def _count(count: int | None) -> str:
    return "?" if count is None else str(count)
