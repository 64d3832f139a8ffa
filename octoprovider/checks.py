"""System checks: what an operator should hear about at start-up (runserver, migrate, check --deploy).

The simulated cloud is announced once by `reconcile --loop` (which `make run` starts), not here:
every management command runs the checks, and `make run` runs three. So no check here calls Hetzner
but the deployment check tagged HETZNER, which `check --deploy`, `preflight` and the reconciler's
start run: `createsuperuser`, `costs` or `static-ips` must not spend the project's rate budget.
"""

import logging

from django.conf import settings
from django.core.checks import Error, Warning, register

from octoprovider import hetzner
from octoprovider.hetzner.deployment import deployment_label_refusal

logger = logging.getLogger(__name__)


# The tag of the checks that ask Hetzner (`manage.py check --deploy --tag hetzner` runs them alone).
HETZNER = "hetzner"


@register(HETZNER, deploy=True)
def hetzner_server_settings(app_configs, **kwargs):
    """Ask Hetzner whether the SSH keys, firewalls and image of the settings exist in the project.

    A wrong one makes every create fail: the reconciler's start, `check --deploy` and `preflight` say
    so (and `/readyz`). A deployment check, so that the commands that do not need Hetzner never call
    it. A warning, not an error, which would stop the reconciler: the fleet that runs must still be
    polled, rebooted and deleted meanwhile. When Hetzner cannot be asked (no network, no
    database to keep the rate budget in yet), nothing is said here: `/readyz` asks again once the
    service runs.
    """
    try:
        problems = hetzner.server_settings_problems(
            image=settings.HCLOUD_IMAGE, ssh_keys=settings.HCLOUD_SSH_KEYS, firewalls=settings.HCLOUD_FIREWALLS
        )
    except Exception as exc:
        logger.debug("Could not check HCLOUD_SSH_KEYS, HCLOUD_FIREWALLS and HCLOUD_IMAGE now: %s", exc)
        return []
    return [
        Warning(
            problem, hint="Fix the setting, or create what it names in the Hetzner project.", id="octoprovider.W004"
        )
        for problem in problems
    ]


@register()
def hetzner_configuration(app_configs, **kwargs):
    messages = []
    if not settings.HETZNER_SANDBOX and not settings.HCLOUD_SSH_KEYS:
        messages.append(
            Warning(
                "HCLOUD_SSH_KEYS is empty: Hetzner will e-mail a root password for every server created.",
                hint="Set HCLOUD_SSH_KEYS to the names of SSH keys in the Hetzner project.",
                id="octoprovider.W001",
            )
        )
    if not settings.OCTOPERF_API_TOKENS:
        messages.append(
            Warning(
                "OCTOPERF_API_TOKENS is empty: every call from OctoPerf will be refused with 401.",
                id="octoprovider.W002",
            )
        )
    elif any(len(token) < 32 for token in settings.OCTOPERF_API_TOKENS) and not settings.HETZNER_SANDBOX:
        messages.append(
            Warning(
                "A token in OCTOPERF_API_TOKENS is shorter than 32 characters: it spends real money, make it long.",
                hint='python -c "import secrets; print(secrets.token_urlsafe(32))"',
                id="octoprovider.W003",
            )
        )
    return messages


CONTRACT_ROUTER = "octoprovider.contract.middleware.ContractRouterMiddleware"


@register()
def contract_middleware(app_configs, **kwargs):
    """Refuse a MIDDLEWARE that does not start with the contract's router (CONTRACT_MIDDLEWARE would not be used)."""
    if list(settings.MIDDLEWARE[:1]) != [CONTRACT_ROUTER]:
        return [
            Error(
                f"MIDDLEWARE must start with {CONTRACT_ROUTER}: whatever comes before it also runs for the "
                "contract, and without it the contract runs the admin's middleware instead of CONTRACT_MIDDLEWARE.",
                id="octoprovider.E001",
            )
        ]
    return []


@register()
def deployment_label(app_configs, **kwargs):
    """Refuse to start under another OCTOPROVIDER_DEPLOYMENT than the one this database's fleet carries.

    An error, which stops `migrate` (the web unit's first step), `runserver` and every command but
    `relabel-deployment`: under a new label the reconciler would mark the whole fleet terminated while
    it runs on at Hetzner. Nothing is said while the database cannot tell (empty, unreachable).
    """
    refusal = deployment_label_refusal()
    if refusal is None:
        return []
    return [Error(refusal, hint="See 'Changing the deployment label' in docs/deployment.md.", id="octoprovider.E010")]
