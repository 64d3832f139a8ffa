"""The `octoprovider` app's models, each defined in the layer that owns it.

Django finds an app's models through this module; the tables keep their `octoprovider_…` names.
"""

from octoprovider.contract.models import ApiToken
from octoprovider.hetzner.models import DeploymentLabel, HetznerRateBudget, RegionAlias, ServerTypeMapping
from octoprovider.operations.models import AuditEvent, HetznerRequestHour, ReconcilerRun

__all__ = [
    "ApiToken",
    "AuditEvent",
    "DeploymentLabel",
    "HetznerRateBudget",
    "HetznerRequestHour",
    "ReconcilerRun",
    "RegionAlias",
    "ServerTypeMapping",
]
