"""The hcloud client: endpoint, token, timeout, short retries, and hooks on every HTTP exchange.

This is the one module that touches hcloud's private attributes (its retry knobs and its requests
sessions). hcloud 2.x has no public way to set them; `_bases` fails loudly when an hcloud upgrade
renamed them, rather than silently bringing back 5 retries with 60 s backoff. hcloud is pinned to
one minor release in pyproject.toml for the same reason.

Whoever wants to see the exchanges (the request log, the audit log, the metrics, tests) registers a
hook here instead of reaching into the session: `add_response_hook(fn)` is called with every
`requests.Response`, `add_failure_hook(fn)` with `(request, exception, seconds)` when no answer came.
"""

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from hcloud import Client
from urllib3.exceptions import NewConnectionError

from octoprovider import __version__
from octoprovider.core.concurrency import waiting_for_hetzner
from octoprovider.hetzner import budget

SANDBOX_ENDPOINT = "https://sandbox.hetzner.invalid/v1"

ResponseHook = Callable[[requests.Response], None]
FailureHook = Callable[[requests.PreparedRequest, requests.RequestException, float], None]

_response_hooks: list[ResponseHook] = [budget.observe]  # the rate budget all processes share
_failure_hooks: list[FailureHook] = []

_local = threading.local()
_sandbox_override = None
_generation = 0


def add_response_hook(hook: ResponseHook) -> None:
    """Call `hook(response)` on every answer Hetzner (or the sandbox) gives, errors included."""
    if hook not in _response_hooks:
        _response_hooks.append(hook)


def add_failure_hook(hook: FailureHook) -> None:
    """Call `hook(request, exception, seconds)` when a request got no answer (timeout, connection)."""
    if hook not in _failure_hooks:
        _failure_hooks.append(hook)


def remove_hook(hook) -> None:
    """Stop calling `hook`; nothing happens if it was not registered."""
    for hooks in (_response_hooks, _failure_hooks):
        if hook in hooks:
            hooks.remove(hook)


def registered_hooks() -> tuple[list, list]:
    """Return copies of the registered hooks (tests restore them after adding their own)."""
    return list(_response_hooks), list(_failure_hooks)


def restore_hooks(saved: tuple[list, list]) -> None:
    _response_hooks[:], _failure_hooks[:] = saved[0], saved[1]


def use_sandbox(cloud) -> None:
    """Route every Hetzner call of this process to `cloud` (a sandbox); None restores the default."""
    global _sandbox_override, _generation
    _sandbox_override = cloud
    _generation += 1


def generation() -> int:
    """Return a number that changes whenever the cloud behind the client changes."""
    return _generation


def is_sandbox() -> bool:
    return _sandbox_override is not None or settings.HETZNER_SANDBOX


def _retry_interval(retries: int) -> float:
    backoff = settings.HCLOUD_RETRY_BACKOFF * (2**retries)
    return random.uniform(backoff / 2, backoff) if backoff else 0.0


# hcloud 2.27 talks through two ClientBase objects: `_client` (api.hetzner.cloud) and `_client_hetzner`
# (api.hetzner.com). `_build_client` sets these on both; checked on every client built.
_HCLOUD_BASES = ("_client", "_client_hetzner")
_HCLOUD_INTERNALS = ("_retry_max_retries", "_retry_interval_func", "_session")


def _bases(client: Client) -> list:
    """Return hcloud's ClientBase objects, failing loudly when an hcloud upgrade renamed what we set."""
    bases = []
    for base_name in _HCLOUD_BASES:
        base = getattr(client, base_name, None)
        missing = [name for name in _HCLOUD_INTERNALS if base is None or not hasattr(base, name)]
        if missing:
            raise ImproperlyConfigured(
                f"hcloud has no {base_name}.{missing[0]}: octoprovider sets it to bound hcloud's retries and to "
                "observe its requests. Install the hcloud release pinned in requirements/ or update "
                "octoprovider.hetzner.connection."
            )
        bases.append(base)
    return bases


# What `recording_answers` notes for a try that never left this machine (see `never_sent`).
NEVER_SENT = 0


def never_sent(exc: requests.RequestException) -> bool:
    """Tell whether a request that got no answer certainly never reached Hetzner.

    True only when no connection was ever made: refused, no DNS answer (urllib3's NewConnectionError
    and its NameResolutionError, which requests wraps in a ConnectionError), or a connect timeout.
    A read timeout or a connection reset comes after the request was sent: Hetzner may have carried
    it out.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)


@contextlib.contextmanager
def recording_answers() -> Iterator[list[int | None]]:
    """Collect, in this thread, the HTTP status of every try made in the block.

    None: no answer came, and the request may have arrived; NEVER_SENT: it never left. hcloud
    retries inside one call; this is how its caller learns what the earlier tries heard.
    """
    outer = getattr(_local, "answers", None)
    _local.answers = answers = []
    try:
        yield answers
    finally:
        _local.answers = outer


def _note_answer(status: int | None) -> None:
    answers = getattr(_local, "answers", None)
    if answers is not None:
        answers.append(status)


def _dispatch_response(response: requests.Response, *args, **kwargs) -> requests.Response:
    _note_answer(response.status_code)
    for hook in list(_response_hooks):
        hook(response)
    return response


def _observe(session: requests.Session) -> None:
    """Call the registered hooks on every exchange of `session`, answered or not."""
    session.hooks["response"].append(_dispatch_response)
    send = session.send

    def send_observed(request: requests.PreparedRequest, **kwargs) -> requests.Response:
        started = time.perf_counter()
        try:
            return send(request, **kwargs)
        except requests.RequestException as exc:
            _note_answer(NEVER_SENT if never_sent(exc) else None)
            seconds = time.perf_counter() - started
            for hook in list(_failure_hooks):
                hook(request, exc, seconds)
            raise

    session.send = send_observed  # type: ignore[method-assign]


def _waiting_without_a_turn(adapter: requests.adapters.BaseAdapter) -> None:
    """Let a web thread give its CPU turn back while `adapter` waits for Hetzner (octoprovider.core.concurrency)."""
    send = adapter.send

    def send_waiting(request: requests.PreparedRequest, **kwargs) -> requests.Response:
        with waiting_for_hetzner():
            return send(request, **kwargs)

    adapter.send = send_waiting  # type: ignore[method-assign]


def _build_client() -> Client:
    sandbox = _sandbox_override
    if sandbox is None and settings.HETZNER_SANDBOX:
        from octoprovider.hetzner.sandbox import FileBackedSandbox

        sandbox = FileBackedSandbox(settings.HCLOUD_SANDBOX_FILE)
        # Boots and power cycles in a fraction of Hetzner's time: the README's walkthrough is tested
        # against `make run` without waiting minutes.
        sandbox.cloud.timings = {
            step: seconds / settings.HCLOUD_SANDBOX_SPEED for step, seconds in sandbox.cloud.timings.items()
        }
        if settings.SANDBOX_LATENCY:
            sandbox.cloud.set_latency(settings.SANDBOX_LATENCY)
    client = Client(
        token=settings.HCLOUD_TOKEN or "sandbox",
        api_endpoint=SANDBOX_ENDPOINT if sandbox is not None else settings.HCLOUD_ENDPOINT,
        application_name="octoprovider",
        application_version=__version__,
        timeout=settings.HCLOUD_TIMEOUT,
    )
    for base in _bases(client):
        # hcloud's retry knobs are not constructor arguments; its defaults (5 tries, up to 60 s each)
        # would hold OctoPerf's HTTP call for minutes. We prefer a quick 503 with Retry-After.
        base._retry_max_retries = settings.HCLOUD_RETRIES
        base._retry_interval_func = _retry_interval
        _observe(base._session)
        if sandbox is not None:
            from octoprovider.hetzner.sandbox import SandboxAdapter

            # Every URL, not only the sandbox's: in sandbox mode nothing may reach the internet.
            adapter = SandboxAdapter(sandbox)
            base._session.mount("https://", adapter)
            base._session.mount("http://", adapter)
        for adapter in set(base._session.adapters.values()):
            _waiting_without_a_turn(adapter)
    return client


def client() -> Client:
    """Return this thread's hcloud client (requests sessions are not shared across threads)."""
    if getattr(_local, "generation", None) != _generation:
        _local.client = _build_client()
        _local.generation = _generation
    return _local.client
