"""Run octoprovider in-process for the benchmarks: a throw-away database, the sandbox on a FakeClock.

Import `harness` first thing in a benchmark script: it configures Django before anything imports it.
Simulated time moves only when a script calls `advance`, which moves the sandbox's clock and
octoprovider's together, so an hour of reconciler passes takes seconds.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "bench-token-0123456789abcdef0123456789"
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"

_tmp = tempfile.mkdtemp(prefix="octoprovider-bench-")
atexit.register(shutil.rmtree, _tmp, ignore_errors=True)
os.environ.pop("HCLOUD_TOKEN", None)
os.environ.update(
    DJANGO_SETTINGS_MODULE="octoprovider.settings",
    DEBUG="true",
    SECRET_KEY="bench-only",
    DATABASE_URL=f"sqlite:///{_tmp}/db.sqlite3",
    HCLOUD_SANDBOX_FILE=f"{_tmp}/sandbox.json",
    OCTOPERF_API_TOKENS=TOKEN,
    MAX_INSTANCES="5000",
    LOG_LEVEL=os.environ.get("LOG_LEVEL", "ERROR"),
)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from octoprovider import hetzner  # noqa: E402
from octoprovider.core import clock  # noqa: E402
from octoprovider.core.reports import PassReport  # noqa: E402
from octoprovider.hetzner.sandbox import FakeClock, SandboxCloud  # noqa: E402
from octoprovider.operations.reconciler import reconcile_pass  # noqa: E402

call_command("migrate", verbosity=0)
cloud = SandboxCloud(clock=FakeClock(start=time.time()))
hetzner.use_sandbox(cloud)
octoperf = Client(HTTP_ACCEPT=JAVA_ACCEPT, SERVER_NAME="localhost")
BASE = f"/octoperf/{TOKEN}"


def advance(seconds: float) -> None:
    """Move simulated time: the sandbox's clock and octoprovider's together."""
    cloud.clock.advance(seconds)
    clock.advance(seconds)


def create(region: str = "fsn1") -> tuple[int, str]:
    """Create an instance through the contract; return the HTTP status and the instance id (or error code)."""
    response = octoperf.post(
        f"{BASE}/instances",
        f"userData=x&region={region}&type=SMALL",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
    )
    body = response.json()
    return response.status_code, body.get("value") or body["error"]["code"]


def state(instance_id: str) -> str:
    """Poll one instance's state through the contract, as OctoPerf does."""
    response = octoperf.get(f"{BASE}/instances/{instance_id}/state", {"region": "fsn1", "zone": "default"})
    assert response.status_code == 200, response.content
    return response.json()["value"]


class Reconciler:
    """Run reconcile passes when the loop would: quick every REFRESH_INTERVAL, full every SWEEP_INTERVAL."""

    def __init__(self) -> None:
        self.next_quick = self.next_full = 0.0
        self.now = 0.0
        self.passes: list[tuple[float, bool, PassReport]] = []

    def tick(self, now: float) -> PassReport | None:
        """Run the pass due at simulated second `now` (seconds since the start), if any."""
        self.now = now
        if now + 1e-9 < self.next_quick:
            return None
        full = now + 1e-9 >= self.next_full
        if full:
            self.next_full = now + settings.SWEEP_INTERVAL
        self.next_quick = now + settings.REFRESH_INTERVAL
        report = reconcile_pass(full=full)
        self.passes.append((now, full, report))
        return report


def machine() -> str:
    """Describe the machine the figures come from."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]
