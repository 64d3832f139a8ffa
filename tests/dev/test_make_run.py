"""A new user's first minutes: `make run`, the README's shell blocks against it, `make superuser`, and
stopping it from an IDE or a supervisor (no terminal).

These start the real `make run` (on a free port, with a throw-away database and simulated cloud running
twenty times faster than Hetzner), so they take seconds of wall clock, not simulated time.
"""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class MakeRun:
    """`make run` in a session of its own, as an IDE starts it: no terminal, its own process group."""

    def __init__(self, tmp: Path, *make_args: str, **env: str):
        self.port = free_port()
        self.log = tmp / "make-run.log"
        self.sandbox_file = tmp / "hetzner-sandbox.json"
        self.env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        self.env.update(
            PORT=str(self.port),
            DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
            HCLOUD_SANDBOX_FILE=str(self.sandbox_file),
            HCLOUD_SANDBOX_SPEED="20",
            REFRESH_INTERVAL="0.2",
            **env,
        )
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                ["make", "run", *make_args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for(lambda: answers(self.port) or self.process.poll() is not None, 90, "make run to answer")
        except AssertionError:
            self.stop()
            raise
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text()

    def gone(self) -> bool:
        """Tell whether make and everything it started have ended (make reaped: a zombie still counts)."""
        self.process.poll()
        return not group_alive(self.process.pid)

    def stop(self) -> None:
        """Leave nothing behind, whatever the test did (these are our own processes, by group id)."""
        if not self.gone():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                wait_for(self.gone, 15, "make run to stop")
            except AssertionError:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    server = MakeRun(tmp_path_factory.mktemp("make-run"))
    yield server
    server.stop()


def shell_blocks(section: str) -> list[str]:
    """Return the ```sh blocks of the README section (## heading) named `section`."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, re.S)


def run_in_bash(script: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_readme_walkthrough_runs_as_written(make_run):
    blocks = shell_blocks("Try it with curl")
    assert len(blocks) == 2
    script = "\n".join(blocks).replace("127.0.0.1:8000", f"127.0.0.1:{make_run.port}")

    started = time.monotonic()
    result = run_in_bash(script, make_run.env)
    print(f"README walkthrough: {time.monotonic() - started:.1f} s")

    assert result.returncode == 0, result.stderr + make_run.output()
    assert '"error"' not in result.stdout, result.stdout
    assert {match.group(1) for match in re.finditer(r"\b(i|ip|assoc)-[0-9a-f]{17}\b", result.stdout)} == {
        "i",
        "ip",
        "assoc",
    }, result.stdout


def test_make_run_announces_the_simulated_cloud_once_with_its_real_path(make_run):
    output = make_run.output()

    assert output.count("simulated") == 1, output
    assert str(make_run.sandbox_file) in output


# A token of the right shape that Hetzner would refuse, and an endpoint where nothing answers: should the
# guard below fail, nothing can reach Hetzner.
FAKE_TOKEN = "x" * 64
NOWHERE = "http://127.0.0.1:9/v1"


def test_make_run_does_not_use_a_hcloud_token_that_is_only_exported_in_the_shell(tmp_path):
    server = MakeRun(tmp_path, HCLOUD_TOKEN=FAKE_TOKEN, HCLOUD_ENDPOINT=NOWHERE)
    try:
        wait_for(
            lambda: "simulated cloud" in server.output() and "Hetzner: the built-in" in server.output(),
            30,
            "the reconciler's first line",
        )
        output = server.output()

        assert "the HCLOUD_TOKEN exported in your shell is NOT used" in output
        assert "make run HCLOUD_TOKEN=" in output and "OCTOPROVIDER_REAL_HETZNER=1 make run" in output
        assert "REAL Hetzner" not in output
        assert FAKE_TOKEN not in output
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("make_args", "env"),
    [
        ((f"HCLOUD_TOKEN={FAKE_TOKEN}",), {}),
        ((), {"HCLOUD_TOKEN": FAKE_TOKEN, "OCTOPROVIDER_REAL_HETZNER": "1"}),
    ],
    ids=["given on make's command line", "exported, with OCTOPROVIDER_REAL_HETZNER=1"],
)
def test_make_run_with_a_real_token_says_loudly_that_servers_are_billed(tmp_path, make_args, env):
    server = MakeRun(tmp_path, *make_args, HCLOUD_ENDPOINT=NOWHERE, **env)
    try:
        wait_for(lambda: "the project of HCLOUD_TOKEN" in server.output(), 60, "the reconciler's first line")
        output = server.output()

        assert "!! REAL Hetzner Cloud: HCLOUD_TOKEN is set, servers are billed." in output
        # The reconciler names what it can of the project (here: that Hetzner did not answer).
        assert f"Hetzner: the REAL Hetzner Cloud at {NOWHERE}, deployment label 'default'" in output
        assert "Servers are billed" in output
        assert "simulated" not in output
        assert FAKE_TOKEN not in output
    finally:
        server.stop()


def test_make_superuser_from_the_readme_creates_an_admin_user_of_make_runs_database(make_run):
    [block] = shell_blocks("Operators' console")

    result = run_in_bash(block, make_run.env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Superuser created successfully." in result.stdout


def test_killing_make_with_sigterm_stops_the_server_and_the_reconciler(tmp_path):
    server = MakeRun(tmp_path)
    try:
        os.kill(server.process.pid, signal.SIGTERM)  # make alone, as an IDE's stop button does; not its group

        wait_for(server.gone, 15, "the server and the reconciler to stop")
        assert not answers(server.port)
    finally:
        server.stop()


def test_killing_make_with_sigkill_stops_the_server_and_the_reconciler(make_run):
    # Last in this module: it ends the server the tests above share. Nobody can forward a SIGKILL:
    # bin/run-dev notices that make is gone.
    os.kill(make_run.process.pid, signal.SIGKILL)

    wait_for(make_run.gone, 15, "the server and the reconciler to stop")
    assert not answers(make_run.port)


def test_make_run_on_a_port_already_in_use_fails_with_one_line_saying_so(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        env.update(
            PORT=str(port),
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            HCLOUD_SANDBOX_FILE=str(tmp_path / "hetzner-sandbox.json"),
        )
        result = subprocess.run(["make", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode != 0
    ours = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("make: ***")]
    assert ours == [
        f"make run: port {port} is already in use (another make run?); PORT={port + 1} make run serves on another"
    ]
    assert not (tmp_path / "db.sqlite3").exists()  # it stopped before anything else


def test_make_run_says_which_token_to_use_and_how_to_create_the_first_admin_user(make_run):
    output = make_run.output()
    base = f"http://127.0.0.1:{make_run.port}"

    assert (
        f"token: dev-token (as no OCTOPERF_API_TOKENS is set), so the base URL is {base}/octoperf/dev-token" in output
    )
    assert f"console: {base}/admin/ (the first admin user: make superuser)" in output


def test_make_run_with_api_tokens_set_does_not_offer_dev_token(tmp_path):
    server = MakeRun(tmp_path, OCTOPERF_API_TOKENS="t" * 40)
    try:
        assert "dev-token" not in server.output()
        assert "make superuser" in server.output()
    finally:
        server.stop()
