"""What the instance endpoints accept: validated here, and published from here as OpenAPI.

Fields read the settings and the operators' overrides when they validate or are described, never at
import: an alias added in the admin is accepted and published without a restart. Where the contract
has its own error code (`unknown_region`, `unknown_type`, `user_data_too_large`), a field raises the
domain error, which the contract's one exception handler answers like the service would.
"""

from django.conf import settings
from rest_framework import serializers

from octoprovider.contract.schema import TextField, any_case, listed
from octoprovider.core.exceptions import InvalidInput
from octoprovider.hetzner import catalog
from octoprovider.hetzner.models import RegionAlias


def region_names() -> list[str]:
    """Every region accepted now: the Hetzner locations, REGION_ALIASES and the admin's aliases."""
    admin_aliases = RegionAlias.objects.values_list("alias", flat=True)
    return sorted(set(settings.SERVER_TYPES) | set(settings.REGION_ALIASES) | set(admin_aliases))


class RegionField(TextField):
    """A Hetzner location or an operator's alias, in any case."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def run_validators(self, value: str) -> None:
        super().run_validators(value)
        catalog.location_for(value)  # raises unknown_region, naming the known regions

    def describe(self) -> dict:
        names = region_names()
        return {
            "pattern": any_case(names),
            "description": f"A Hetzner location or an operator's alias, in any case: {listed(names)}.",
            "example": names[0],
        }


class InstanceTypeField(TextField):
    """OctoPerf's size, in any case; the location's server type for it is the operator's to choose."""

    def run_validators(self, value: str) -> None:
        super().run_validators(value)
        if value.upper() not in settings.INSTANCE_TYPES:
            raise InvalidInput(
                f"Unknown type {value!r}; expected one of {', '.join(settings.INSTANCE_TYPES)} (any case).",
                code="unknown_type",
            )

    def describe(self) -> dict:
        return {
            "pattern": any_case(settings.INSTANCE_TYPES),
            "description": f"OctoPerf's size, in any case: {listed(settings.INSTANCE_TYPES)}. "
            "The operator maps each to a Hetzner server type per location (SERVER_TYPES, or the admin).",
            "example": settings.INSTANCE_TYPES[0],
        }


class UserDataField(TextField):
    """The agent's start-up script: Hetzner takes at most USER_DATA_MAX_BYTES of it, counted in UTF-8 bytes."""

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)

    def run_validators(self, value: str) -> None:
        super().run_validators(value)  # refuses lone surrogates, which have no UTF-8 bytes to count
        size, limit = len(value.encode()), settings.USER_DATA_MAX_BYTES
        if size > limit:
            raise InvalidInput(
                f"userData is {size} bytes; Hetzner accepts at most {limit} bytes ({limit / 1024:g} KiB) in UTF-8.",
                code="user_data_too_large",
            )

    def describe(self) -> dict:
        limit = settings.USER_DATA_MAX_BYTES
        return {
            "description": f"The agent's start-up script. At most {limit} bytes ({limit / 1024:g} KiB, Hetzner's "
            f"limit) once encoded in UTF-8: {limit} ASCII characters, fewer where characters take several "
            "bytes. Sent to Hetzner as user_data and nowhere else: never stored, logged or echoed.",
        }


def zone_field() -> TextField:
    # A JSON null counts as absent (ContractView.params drops it), hence allow_null.
    return TextField(
        max_length=64,
        required=False,
        allow_blank=True,
        allow_null=True,
        default="",
        help_text="Recorded, not used: Hetzner places servers by location.",
    )


class InstanceCreateInput(serializers.Serializer):
    # The contract's names, as OctoPerf sends them.
    userData = UserDataField()
    region = RegionField()
    type = InstanceTypeField(max_length=16)
    zone = zone_field()

    class Meta:
        ref_name = "InstanceCreateRequest"


class InstanceDeleteInput(serializers.Serializer):
    instanceId = TextField(max_length=64, help_text="The id `POST /instances` answered (`i-…`).")
