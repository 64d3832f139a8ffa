"""The domain's exceptions, each carrying the contract's HTTP status and error code.

Services raise these; `octoprovider.contract.errors.exception_handler` turns them into
`{"error": {"code": ..., "message": ...}}`. The Hetzner gateway translates hcloud's errors into the
`Hetzner*` family, so nothing above the gateway knows hcloud.
"""


class ServiceError(Exception):
    """A request the service refused or could not carry out, with the status to answer."""

    status_code = 400
    code = "invalid_input"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    @property
    def public_message(self) -> str:
        """The message OctoPerf gets (`message` is logged and shown to operators)."""
        return self.message


class InvalidInput(ServiceError):
    status_code = 400
    code = "invalid_input"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class LimitReached(ServiceError):
    """An operator's guardrail: the call would spend more than allowed."""

    status_code = 429
    code = "limit_reached"


# --- Hetzner, as translated by the gateway ---------------------------------------------------------


class HetznerError(ServiceError):
    """Hetzner answered an error we have no better meaning for.

    `message` names the call and Hetzner's ids for the logs and the operators; `public` is what
    OctoPerf reads, with no Hetzner id (the contract exposes none). `earlier_answer_lost` says that
    an earlier try of the same call (hcloud retries) got no answer or a 5xx: it may have had its effect.
    """

    status_code = 502
    code = "hetzner_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        hetzner_code: str | None = None,
        public: str | None = None,
    ):
        super().__init__(message, code=code, retry_after=retry_after)
        self.hetzner_code = hetzner_code
        self.public = public
        self.earlier_answer_lost = False
        # The fields Hetzner named in `details.fields` (`invalid_input`, `uniqueness_error`): `public_net.ipv4`.
        self.fields: tuple[str, ...] = ()

    @property
    def public_message(self) -> str:
        return self.public or self.message


class HetznerUnavailable(HetznerError):
    """Hetzner cannot serve us now (rate limit, outage, capacity, quota, our token): try later."""

    status_code = 503
    code = "hetzner_unavailable"

    def __init__(self, message: str, *, retry_after: int = 30, **kwargs):
        super().__init__(message, retry_after=retry_after, **kwargs)


class ConfigurationError(HetznerUnavailable):
    """The operator's settings name what the Hetzner project lacks (an SSH key, a firewall, an image).

    Not OctoPerf's fault, so never a 400: every create fails the same way until the operator acts.
    """

    code = "configuration_error"

    def __init__(self, message: str, *, retry_after: int = 300, **kwargs):
        kwargs.setdefault("hetzner_code", "configuration")
        super().__init__(message, retry_after=retry_after, **kwargs)


class HetznerNoCapacity(HetznerUnavailable):
    """Hetzner cannot deliver the server type in the location right now (`resource_unavailable`).

    A create tries the next candidate type, then the next LOCATION_FALLBACKS location.
    """

    code = "hetzner_resource_unavailable"

    def __init__(self, message: str, *, retry_after: int = 300, **kwargs):
        kwargs.setdefault("hetzner_code", "resource_unavailable")
        super().__init__(message, retry_after=retry_after, **kwargs)


class HetznerTimeout(HetznerUnavailable):
    """No answer in time: Hetzner may or may not have carried the call out."""

    code = "hetzner_timeout"


class HetznerUnreachable(HetznerUnavailable):
    """Hetzner's API could not be reached at all (connection refused, no DNS answer, connect timeout).

    The request never left: whatever it asked for was not done (`hetzner.refused_without_effect`).
    """

    code = "hetzner_unreachable"


class HetznerBadAnswer(HetznerUnavailable):
    """Hetzner answered something that cannot be read (a 200 without `servers`, a body that is not JSON).

    Hetzner's fault, not ours: OctoPerf gets 503 with Retry-After, the reconciler notes it and goes
    on. Whether a create or a delete answered so was carried out is unknown.
    """

    code = "hetzner_bad_answer"

    def __init__(self, message: str, *, retry_after: int = 15, **kwargs):
        kwargs.setdefault("hetzner_code", "bad_answer")
        super().__init__(message, retry_after=retry_after, **kwargs)


class HetznerRejected(HetznerError):
    """Hetzner refused the request as invalid (`invalid_input` and friends)."""

    status_code = 400
    code = "invalid_input"


class HetznerTypeNotOrderable(HetznerRejected):
    """A create asked for a server type that Hetzner does not sell in the location (or no longer does).

    Hetzner answers `invalid_input` with no field named; the gateway tells it from the others by
    asking /server_types (`hetzner.servers`). A create tries the next candidate type.
    """

    code = "type_not_available"


class HetznerNotFound(HetznerError):
    status_code = 404
    code = "not_found"


class HetznerLocked(HetznerError):
    """Another action is running on the resource."""

    status_code = 409
    code = "hetzner_locked"


class HetznerConflict(HetznerError):
    """A rule of Hetzner's stands in the way (`uniqueness_error`, `server_not_stopped`, ...)."""

    status_code = 409
    code = "conflict"


class HetznerPrimaryIPRefused(HetznerConflict):
    """A create was refused because of the Primary IP it was given as its public IPv4.

    The IP is assigned meanwhile, gone, in another location or of the wrong version, or Hetzner
    rejected the `public_net` it was sent in. A create tries another free static IP, or none.
    """
