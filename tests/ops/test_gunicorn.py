"""gunicorn.conf.py: what each web worker does once it has loaded octoprovider, and what gunicorn itself
answers and logs, run for real: no line it or Django writes, and no answer, holds OctoPerf's token."""

import gc
import http.client
import json
import runpy
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from tests.ops.test_log_format import environment, free_port, manage

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "Tok3n-of-OctoPerf_0123456789abcdefXYZ"


def test_a_worker_puts_what_it_loaded_out_of_the_garbage_collectors_reach():
    # A full collection walks every tracked object while the worker's threads wait: after loading
    # Django, DRF and the admin that was the slowest state polls' extra tens of milliseconds.
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    try:
        config["post_worker_init"](types.SimpleNamespace())

        assert gc.get_freeze_count() > 0
        assert "octoprovider.urls" in sys.modules  # loaded before, not at the first request
    finally:
        gc.unfreeze()


class Gunicorn:
    """A real gunicorn serving octoprovider (sandbox, SQLite), its stdout and stderr in one file."""

    def __init__(self, port: int, log: Path):
        self.port, self.log = port, log

    def lines(self) -> str:
        return self.log.read_text(errors="replace")

    def raw(self, data: bytes) -> tuple[int, dict, bytes]:
        """Send `data` as it is; return the status, the headers and the body of the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
        return int(status_line.split()[1]), headers, body

    def request(self, method: str, path: str, body: str = "", content_type: str = "") -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            connection.request(method, path, body=body.encode(), headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def wait_for_line(self, text: str, count: int) -> None:
        """Wait until `text` shows `count` times in the log (the worker writes after answering)."""
        deadline = time.monotonic() + 10
        while self.lines().count(text) < count:
            assert time.monotonic() < deadline, self.lines()
            time.sleep(0.05)


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    # As in production (DEBUG off: Django's debug 404 page would quote the path), with a "Hetzner" that
    # refuses every connection: nothing here may reach the real one.
    env = environment(
        tmp_path,
        LOG_FORMAT="text",
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        OCTOPERF_API_TOKENS=TOKEN,
        DEBUG="false",
        SECRET_KEY="test-secret-" + "x" * 40,
        HCLOUD_TOKEN="not-a-real-token",
        HCLOUD_ENDPOINT=f"http://127.0.0.1:{free_port()}/v1",
    )
    assert manage(env, "migrate", "--noinput").returncode == 0
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "octoprovider.wsgi", "--config", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Gunicorn(int(env["PORT"]), log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.request("GET", "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, server.lines()
                time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


# What gunicorn refuses before Django sees it: its own answer, once HTML quoting the request line.
MALFORMED = {
    "no HTTP version": f"GET /octoperf/{TOKEN}/instances\r\n\r\n".encode(),
    "a control character": f"GET /octoperf/{TOKEN}/instances\x01 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "a control character in the token": f"GET /octoperf/{TOKEN[:5]}\x07{TOKEN[5:]}/instances HTTP/1.1\r\n\r\n".encode(),
    "a bad HTTP version": f"GET /octoperf//{TOKEN}/instances HTTP/7.1\r\nHost: x\r\n\r\n".encode(),
    "a bad method": f"G\x01T /OCTOPERF/{TOKEN}/instances HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "a bad header": f"GET /octoperf/{TOKEN}/instances HTTP/1.1\r\nHost: x\r\nBad\x01Name: y\r\n\r\n".encode(),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_line_is_a_json_400_and_no_line_holds_the_token(gunicorn, data):
    before = gunicorn.lines().count("Invalid request from")

    status, headers, body = gunicorn.raw(data)

    gunicorn.wait_for_line("Invalid request from", before + 1)
    assert status == 400
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert TOKEN not in body.decode("latin-1")
    assert TOKEN not in gunicorn.lines()
    assert TOKEN[5:] not in gunicorn.lines()


def test_a_url_over_gunicorns_limit_is_a_json_414_and_no_line_holds_the_token(gunicorn):
    before = gunicorn.lines().count("Invalid request from")

    status, headers, body = gunicorn.raw(f"GET /octoperf/{TOKEN}/instances?{'a' * 8000} HTTP/1.1\r\n\r\n".encode())

    gunicorn.wait_for_line("Invalid request from", before + 1)
    assert status == 414
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body)["error"]["code"] == "uri_too_long"
    assert TOKEN not in body.decode() and TOKEN not in gunicorn.lines()


def test_a_post_with_over_a_thousand_query_fields_and_a_charset_is_a_json_400(gunicorn):
    fields = "&".join("f" for _ in range(1500))  # under gunicorn's 4094-byte request line

    status, headers, body = gunicorn.request(
        "POST",
        f"/octoperf/{TOKEN}/instances?{fields}",
        "region=fsn1&type=SMALL&userData=x",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
    )

    assert status == 400
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body)["error"]["code"] == "too_many_fields"
    assert TOKEN not in gunicorn.lines()


# Every shape a base URL can take, typed right or wrong: the contract's paths, typos, the bare base URL
# with and without a slash, doubled slashes, capitals, percent-encoding.
PATH_SHAPES = [
    f"/octoperf/{TOKEN}/instances",
    f"/octoperf/{TOKEN}/instances/i-00000000000000000/state",
    f"/octoperf/{TOKEN}/static-ips/allocate?region=fsn1",
    f"/octoperf/{TOKEN}/instance/i-00000000000000000/state",
    f"/octoperf/{TOKEN}/typo/x",
    f"/octoperf/{TOKEN}",
    f"/octoperf/{TOKEN}/",
    f"/octoperf/{TOKEN}//instances",
    f"/octoperf//{TOKEN}/instances",
    f"/octoperf///{TOKEN}//instances/i-0/state",
    f"//octoperf/{TOKEN}/instances",
    f"/OCTOPERF/{TOKEN}/instances",
    f"/Octoperf/{TOKEN}/instances/i-00000000000000000/state",
    f"/octoperf%2F{TOKEN}/instances",
    f"/%6Fctoperf/{TOKEN}/instances",
    f"/octoperf/instances/{TOKEN}",
]


def test_no_path_shape_nor_method_puts_the_token_in_gunicorns_or_djangos_lines(gunicorn):
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND"]
    before = gunicorn.lines().count('" 4') + gunicorn.lines().count('" 2')

    for path in PATH_SHAPES:
        for method in methods:
            status, _, body = gunicorn.request(
                method, path, "region=fsn1", content_type="application/x-www-form-urlencoded"
            )
            assert TOKEN not in body.decode(errors="replace"), (method, path)
            assert status != 500, (method, path, body)

    gunicorn.wait_for_line("HTTP/1.1", before + len(PATH_SHAPES) * len(methods))
    lines = gunicorn.lines()
    assert "Not Found: /OCTOPERF/***/instances" in lines  # Django's own line, masked
    assert '"GET /octoperf//***/instances HTTP/1.1"' in lines  # gunicorn's access line, masked
    assert TOKEN not in lines
