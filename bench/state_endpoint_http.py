"""The state endpoint over HTTP: gunicorn on PostgreSQL, against a trivial JSON view served by the same server.

    .venv/bin/python bench/state_endpoint_http.py [--seconds 15] [--connections 64] [--instances 1000]

Creates a throw-away PostgreSQL database (postgres://postgres@127.0.0.1:5432, trust auth), migrates
it, stores `--instances` running instances, and starts gunicorn with the production configuration
(gunicorn.conf.py, 2 workers, DEBUG=true with the file-backed sandbox; the state endpoint never calls
it). Then wrk (Debian's `wrk`) drives `/healthz` and the state endpoint in turn, `--connections`
concurrent connections on loopback for `--seconds` each, each request of the state run asking for a
random instance. The load generator and the server share the machine's cores. Everything is removed
at the end: gunicorn, the database, the temporary directory.
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
SERVER = "postgres://postgres@127.0.0.1:5432"
TOKEN = "bench-token-0123456789abcdef0123456789"
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"

SEED = """
import json, sys
import django
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from instances.models import Instance
rows = Instance.objects.bulk_create(
    Instance(region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="docker-ce",
             status="running", hetzner_id=70_000_000 + n, hetzner_status="running")
    for n in range(int(sys.argv[1]))
)
client = Client(SERVER_NAME="localhost")
queries = {}
for name, url in (("healthz", "/healthz"), ("state", f"/octoperf/{sys.argv[2]}/instances/{rows[0].id}/state?region=fsn1")):
    client.get(url)  # warm
    with CaptureQueriesContext(connection) as captured:
        status = client.get(url).status_code
    queries[name] = [status, [q["sql"] for q in captured]]
print(json.dumps({"ids": [row.id for row in rows], "queries": queries}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(url: str, *, seconds: float, connections: int, script: Path | None = None) -> dict:
    """Run wrk; return requests/s, p50 and p99 latency (ms), and the error counts."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-H", f"Accept: {JAVA_ACCEPT}"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--instances", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    database = f"octoprovider_bench_{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="octoprovider-bench-http-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(
        DEBUG="true", SECRET_KEY="bench-only", DATABASE_URL=f"{SERVER}/{database}",
        HCLOUD_SANDBOX_FILE=str(tmp / "sandbox.json"), OCTOPERF_API_TOKENS=TOKEN,
        DJANGO_SETTINGS_MODULE="octoprovider.settings", HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="2",
    )
    gunicorn = None
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
        seeded = subprocess.run([PYTHON, "-c", SEED, str(args.instances), TOKEN], cwd=ROOT, env=env, check=True,
                                capture_output=True, text=True, timeout=300)
        import json

        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        ids = seed["ids"]
        script = tmp / "state.lua"
        script.write_text(
            "local ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n"
            "math.randomseed(os.time())\n"
            "request = function()\n"
            f'  return wrk.format("GET", "/octoperf/{TOKEN}/instances/" .. ids[math.random(#ids)] .. '
            '"/state?region=fsn1&zone=default")\n'
            "end\n"
        )
        log = open(tmp / "gunicorn.log", "w")
        gunicorn = subprocess.Popen([GUNICORN, "octoprovider.wsgi", "--config", "gunicorn.conf.py"], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        # Warm both workers and both paths; then one measured run each.
        wrk(f"{base}/healthz", seconds=2, connections=args.connections)
        wrk(base, seconds=2, connections=args.connections, script=script)
        healthz = wrk(f"{base}/healthz", seconds=args.seconds, connections=args.connections)
        state = wrk(base, seconds=args.seconds, connections=args.connections, script=script)
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)

    cores = os.cpu_count()
    print(f"machine: {cores} cores shared by gunicorn (2 sync workers), PostgreSQL and wrk (2 threads); "
          f"{args.connections} connections on loopback, {args.seconds:g} s per endpoint, {args.instances} instances")
    for name, (status, queries) in seed["queries"].items():
        print(f"{name}: HTTP {status}, {len(queries)} SQL queries per request" + (f": {queries}" if queries else ""))
    for name, figures in (("/healthz (trivial JSON view)", healthz), ("state endpoint", state)):
        print(f"{name}: {figures['rps']:.0f} requests/s ({figures['requests']} requests), p50 {figures['p50']:.2f} ms, "
              f"p99 {figures['p99']:.2f} ms, non-2xx {figures['non_2xx']}, socket errors {figures['socket_errors']}")
    print(f"state endpoint / healthz throughput: {100 * state['rps'] / healthz['rps']:.0f} % (target >= 80 %)")


if __name__ == "__main__":
    main()
