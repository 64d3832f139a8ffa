"""Ownership labels: what marks a Hetzner resource as this deployment's (DESIGN §3)."""

from django.conf import settings

LABEL_MANAGED_BY = "managed-by"
LABEL_DEPLOYMENT = "octoprovider-deployment"
LABEL_ID = "octoprovider-id"
MANAGED_BY = "octoprovider"


def ownership_labels(our_id: str) -> dict[str, str]:
    """Label a resource as ours: without both of the first two, a resource is never touched."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_DEPLOYMENT: settings.OCTOPROVIDER_DEPLOYMENT,
        LABEL_ID: our_id,
    }


def managed_selector(*, ids: list[str] | None = None, deployment: str | None = None) -> str:
    """Select this deployment's resources (or `deployment`'s), or only those with the given ids of ours."""
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_DEPLOYMENT}={deployment or settings.OCTOPROVIDER_DEPLOYMENT}"
    if ids is not None:
        selector += f",{LABEL_ID} in ({','.join(ids)})"
    return selector


def is_ours(labels: dict[str, str]) -> bool:
    return (
        labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_DEPLOYMENT) == settings.OCTOPROVIDER_DEPLOYMENT
    )
