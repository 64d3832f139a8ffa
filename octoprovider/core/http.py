"""What every layer knows of the HTTP side: the contract's content type, its paths, Bearer headers."""

CONTENT_TYPE = "application/json; charset=utf-8"


def is_contract_path(path: str) -> bool:
    """Tell whether `path` is under OctoPerf's contract (`/octoperf/…`), where every answer is JSON."""
    return path == "/octoperf" or path.startswith("/octoperf/")


def bearer_token(authorization: str) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header value, or None."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
