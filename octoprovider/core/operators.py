"""Who acts from the console: set around an operator's action, read wherever its effects are audited.

A console action (terminate, release, a reconcile pass) makes Hetzner calls several layers down, in
code that knows nothing of requests or users. The operator's name travels with the call instead, in a
context variable, so that the audit rows of those calls name who caused them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_acting_operator: ContextVar[str] = ContextVar("acting_operator", default="")


@contextmanager
def acting_as(username: str) -> Iterator[None]:
    """Attribute to `username` whatever is done inside the block (its Hetzner calls included)."""
    token = _acting_operator.set(username)
    try:
        yield
    finally:
        _acting_operator.reset(token)


def acting_operator() -> str:
    """Return the username of the operator on whose behalf this code runs, or "" (OctoPerf, the reconciler)."""
    return _acting_operator.get()
