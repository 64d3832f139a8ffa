"""System checks: what an operator should hear about at start-up (runserver, migrate, check --deploy)."""

from django.conf import settings
from django.core.checks import Info, Warning, register


@register()
def hetzner_configuration(app_configs, **kwargs):
    messages = []
    if settings.HETZNER_SANDBOX:
        messages.append(
            Info(
                "HCLOUD_TOKEN is not set: octoprovider uses its built-in simulated Hetzner Cloud "
                f"(state in {settings.HCLOUD_SANDBOX_FILE.name}); nothing real is created or billed.",
                id="octoprovider.I001",
            )
        )
    elif not settings.HCLOUD_SSH_KEYS:
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
