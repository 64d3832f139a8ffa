"""A 200-agent test starting: creates in one burst while the agents of running tests are polled.

    .venv/bin/python bench/burst.py [--creates 200] [--pollers 20] [--rate 5] [--rows 10000]

Starts octoprovider under gunicorn as `docs/deployment.md` ships it (`gunicorn octoprovider.wsgi
--config gunicorn.conf.py`, DEBUG off) on a throw-away PostgreSQL database
(postgres://postgres@127.0.0.1:5432, trust auth; its name is octoprovider_bench_burst). Hetzner is
the sandbox (octoprovider/hetzner/sandbox), served over HTTP on loopback by a process of its own
as HCLOUD_ENDPOINT, with its rate limit, answering each server create in 1.5 s and each read in
0.2 s (SANDBOX_LATENCY's "POST /servers=1.5,GET=0.2"). Over HTTP, as Hetzner is: the sandbox's
file-backed mode, which `make run` uses to share it between processes, rewrites its whole file on
every request, and at 200 servers that alone would take longer than the burst.

Each configuration gets a fresh database holding 20 running instances. A poller asks each of them
for its state 5 times a second (one keep-alive connection per instance, as OctoPerf's agents'
watchdog does); after a second, `--creates` creates are sent at once, one connection each, and
the poller goes on until every create has answered (or 30 s passed). Configurations, in one run:

- before: 2 sync workers, what gunicorn.conf.py shipped before (`--worker-class sync --threads 1`);
- now: gunicorn.conf.py as it is;
- now + budgets: the same with MONTHLY_BUDGET_EUR and DAILY_BUDGET_EUR set (high enough for every
  create) and `--rows` instances created earlier this month (most of them deleted since).

Prints a table per configuration, the workers' memory (RSS) after the burst, what Hetzner answered
429 (the sandbox keeps Hetzner's rate limit) and whether the issue's targets are met: every create
answers 200 within 10 s, and the polls during the burst have a p99 <= 250 ms with none failing.
Everything runs on loopback, and is removed at the end: the gunicorns, the database, the files.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from state_endpoint_http import free_port, serve, stop, workers_cpu_seconds  # noqa: E402 (the HTTP benchmarks' helpers)

PYTHON = str(ROOT / ".venv" / "bin" / "python")
SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASE = "octoprovider_bench_burst"
TOKEN = "bench-token-0123456789abcdef0123456789"
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"
LATENCY = "POST /servers=1.5,GET=0.2"
HCLOUD_TOKEN = "bench-hcloud-token-never-leaves-loopback"
CREATE_TIMEOUT = 30.0
TARGET_SLOWEST_CREATE = 10.0
TARGET_POLL_P99 = 0.250

SANDBOX = """
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
import django
django.setup()
from octoprovider.hetzner.sandbox import SandboxCloud
cloud = SandboxCloud(token=sys.argv[2])
cloud.set_latency(sys.argv[3])
cloud.add_ssh_key("bench")  # HCLOUD_SSH_KEYS, as production has one
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def answer(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = url.path[url.path.find("/v1") + 3:] if "/v1" in url.path else url.path
        status, headers, payload = cloud.handle(self.command, path, parse_qs(url.query, keep_blank_values=True),
                                                body, dict(self.headers.items()))
        time.sleep(cloud.latency_for(self.command, path))
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_DELETE = answer
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.daemon_threads = True
server.serve_forever()
"""

SEED = """
import json, random, sys
from datetime import timedelta
import django
django.setup()
from instances.models import Instance
from octoprovider.core import clock
running = Instance.objects.bulk_create(
    Instance(region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="docker-ce",
             status="running", hetzner_id=70_000_000 + n, hetzner_status="running")
    for n in range(int(sys.argv[1]))
)
# A month of earlier tests: created from the month's start to half an hour ago, nearly all deleted.
now = clock.now()
month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
span = max(60.0, (now - timedelta(minutes=30) - month_start).total_seconds())
rng = random.Random(22)
earlier = []
for n in range(int(sys.argv[2])):
    created = month_start + timedelta(seconds=rng.uniform(0, span))
    ended = min(created + timedelta(minutes=rng.uniform(5, 120)), now - timedelta(minutes=20))
    live = n % 100 == 0
    earlier.append(Instance(
        region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="docker-ce",
        status="running" if live else "terminated", hetzner_id=71_000_000 + n, created_at=created,
        delete_requested_at=None if live else ended, terminated_at=None if live else ended))
Instance.objects.bulk_create(earlier, batch_size=2000)
print(json.dumps([row.id for row in running]))
"""


@dataclass
class Config:
    name: str
    gunicorn_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    rows: int = 0


@dataclass
class Outcome:
    creates: list[tuple[float, int | None, str]] = field(default_factory=list)  # seconds, status, error code
    polls: list[tuple[float, float, int | None]] = field(default_factory=list)  # sent at, seconds, status
    burst: tuple[float, float] = (0.0, 0.0)
    rss_mb: list[float] = field(default_factory=list)
    workers: str = ""
    hetzner_429: int = 0
    hetzner_creates: int = 0
    cpu_seconds: float = 0.0  # the workers', during the burst


def workers_of(master: subprocess.Popen) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)  # as bench/_harness.py computes it (importing it would set Django up here)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def rss_mb(pid: int) -> float:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) / 1024


def poll_forever(port: int, instance_id: str, rate: float, stop_at: threading.Event, out: list) -> None:
    """Ask for one instance's state `rate` times a second on one keep-alive connection, until told to stop."""
    path = f"/octoperf/{TOKEN}/instances/{instance_id}/state?region=fsn1&zone=default"
    connection = None
    next_at = time.monotonic()
    while not stop_at.is_set():
        sent = time.monotonic()
        status = None
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CREATE_TIMEOUT)
            connection.request("GET", path, headers={"Accept": JAVA_ACCEPT})
            response = connection.getresponse()
            body = response.read()
            status = response.status if json.loads(body).get("value") == "running" else -response.status
        except (OSError, http.client.HTTPException, ValueError):
            connection = None
        out.append((sent, time.monotonic() - sent, status))
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))


def poll_in_a_process(port: int, instance_ids: list[str], rate: float, stop_polling, results) -> None:
    """Run the pollers in a process of their own, until `stop_polling` is set; put what they saw in `results`.

    In the process of the 200 creating threads, a poller would wait for that process's GIL after each
    answer, and its times would measure the benchmark rather than the service.
    """
    out: list = []
    stop_at = threading.Event()
    pollers = [
        threading.Thread(target=poll_forever, args=(port, instance_id, rate, stop_at, out))
        for instance_id in instance_ids
    ]
    for thread in pollers:
        thread.start()
    stop_polling.wait()
    stop_at.set()
    for thread in pollers:
        thread.join(CREATE_TIMEOUT + 5)
    results.put(out)


def create_one(port: int, start: threading.Event, out: list) -> None:
    start.wait()
    sent = time.monotonic()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CREATE_TIMEOUT)
        connection.request(
            "POST",
            f"/octoperf/{TOKEN}/instances",
            body="userData=x&region=fsn1&type=SMALL",
            headers={"Accept": JAVA_ACCEPT, "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
        )
        response = connection.getresponse()
        body = json.loads(response.read() or b"{}")
        out.append((time.monotonic() - sent, response.status, (body.get("error") or {}).get("code", "")))
        connection.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        out.append((time.monotonic() - sent, None, type(exc).__name__))


def run(config: Config, *, args, base_env: dict, tmp: Path) -> Outcome:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    hetzner_port = free_port()
    env = (
        base_env
        | {"DATABASE_URL": f"{SERVER}/{DATABASE}", "HCLOUD_ENDPOINT": f"http://127.0.0.1:{hetzner_port}/v1"}
        | config.env
    )
    sandbox_env = base_env | {"DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp}/sandbox.sqlite3"}
    sandbox = subprocess.Popen(
        [PYTHON, "-c", SANDBOX, str(hetzner_port), HCLOUD_TOKEN, LATENCY], cwd=ROOT, env=sandbox_env
    )
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    seeded = subprocess.run(
        [PYTHON, "-c", SEED, str(args.pollers), str(config.rows)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    polled = json.loads(seeded.stdout.strip().splitlines()[-1])
    port = free_port()
    log = tmp / f"{config.name.replace(' ', '')}.log"
    log = Path(args.logs) / log.name if args.logs else log
    master = serve("octoprovider.wsgi", env=env, port=port, run_dir=tmp / "run", log=log, args=config.gunicorn_args)
    outcome = Outcome()
    try:
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # prices and catalogue, read once
        warm.request(
            "GET", f"/octoperf/{TOKEN}/instances/{polled[0]}/state?region=fsn1", headers={"Accept": JAVA_ACCEPT}
        )
        warm.getresponse().read()
        processes = multiprocessing.get_context("fork")  # before this process starts its threads
        stop_polling, polls = processes.Event(), processes.SimpleQueue()
        poller = processes.Process(target=poll_in_a_process, args=(port, polled, args.rate, stop_polling, polls))
        poller.start()
        start = threading.Event()
        creators = [
            threading.Thread(target=create_one, args=(port, start, outcome.creates)) for _ in range(args.creates)
        ]
        for thread in creators:
            thread.start()
        time.sleep(1.5)
        cpu_before = workers_cpu_seconds(master)
        began = time.monotonic()
        start.set()
        for thread in creators:
            thread.join(CREATE_TIMEOUT + 5)
        ended = time.monotonic()
        outcome.cpu_seconds = sum(workers_cpu_seconds(master).values()) - sum(cpu_before.values())
        time.sleep(1.0)
        stop_polling.set()
        outcome.polls = polls.get()
        poller.join(CREATE_TIMEOUT + 5)
        outcome.burst = (began, ended)
        workers = workers_of(master)
        outcome.rss_mb = [rss_mb(pid) for pid in workers]
    finally:
        stop(master)
        stop(sandbox)
    text = log.read_text()
    outcome.hetzner_429 = len(re.findall(r"Hetzner \w+ \S+ 429", text))
    outcome.hetzner_creates = len(re.findall(r"Hetzner POST /servers 201", text))
    outcome.workers = " ".join(config.gunicorn_args) or "as configured"
    match = re.search(r"Using worker: (\w+)", text)
    outcome.workers = match.group(1) if match else "?"
    return outcome


def report(config: Config, outcome: Outcome, creates: int) -> bool:
    began, ended = outcome.burst
    answered_200 = [seconds for seconds, status, _ in outcome.creates if status == 200]
    within = [seconds for seconds in answered_200 if seconds <= CREATE_TIMEOUT]
    failed = {}
    for _, status, code in outcome.creates:
        if status != 200:
            failed[f"{status} {code}".strip()] = failed.get(f"{status} {code}".strip(), 0) + 1
    slowest = max((seconds for seconds, _, _ in outcome.creates), default=0.0)
    during = [(seconds, status) for sent, seconds, status in outcome.polls if began <= sent <= ended]
    latencies = [seconds for seconds, _ in during]
    poll_failures = sum(1 for _, status in during if status != 200)
    p99 = percentile(latencies, 99) if latencies else 0.0
    met = (
        len(answered_200) == creates
        and slowest <= TARGET_SLOWEST_CREATE
        and p99 <= TARGET_POLL_P99
        and poll_failures == 0
        and outcome.hetzner_429 == 0
    )
    slowest_text = (
        f"> {CREATE_TIMEOUT:.0f} s"
        if len(outcome.creates) < creates or any(status is None for _, status, _ in outcome.creates)
        else f"{slowest:.1f} s"
    )
    print(
        f"| {config.name} | {len(within)} of {creates}"
        + (f"; {', '.join(f'{n} {what}' for what, n in sorted(failed.items()))}" if failed else "")
        + f" | {slowest_text} | {max(latencies, default=0) * 1000:.0f} ms |"
        f" p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
        f" {poll_failures} failed of {len(during)} |"
        f" {ended - began:.1f} s, workers' CPU {outcome.cpu_seconds:.1f} s |"
        f" {outcome.workers}, {len(outcome.rss_mb)} x {max(outcome.rss_mb, default=0):.0f} MB |"
        f" {outcome.hetzner_429} | {'yes' if met else 'NO'} |"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--pollers", type=int, default=20, help="running instances polled")
    parser.add_argument("--rate", type=float, default=5.0, help="polls a second per instance")
    parser.add_argument("--rows", type=int, default=10_000, help="instances this month, for the budgets' run")
    parser.add_argument("--logs", help="keep each configuration's gunicorn log in this directory")
    parser.add_argument(
        "--only",
        choices=["before", "now", "budgets"],
        action="append",
        help="run only these configurations (default: all three)",
    )
    args = parser.parse_args()

    # The concurrency knobs (docs/deployment.md, "Sizing") pass through, to try other figures.
    knobs = ("WEB_CONCURRENCY", "GUNICORN_THREADS", "HETZNER_CALLS_PER_WORKER", "CPU_TURNS_PER_WORKER", "CONN_MAX_AGE")
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", *knobs)}
    base_env.update(
        HOST="127.0.0.1",
        DEBUG="false",
        SECRET_KEY="bench-only",
        OCTOPERF_API_TOKENS=TOKEN,
        DJANGO_SETTINGS_MODULE="octoprovider.settings",
        HCLOUD_TOKEN=HCLOUD_TOKEN,
        HCLOUD_SSH_KEYS="bench",
        LOG_LEVEL="INFO",
        MAX_INSTANCES="100000",
        MAX_INSTANCES_PER_REGION="100000",
    )
    configs = [
        Config("before: 2 sync workers", ["--workers", "2", "--worker-class", "sync", "--threads", "1"]),
        Config("now: gunicorn.conf.py"),
        Config(
            f"now + budgets, {args.rows} rows",
            env={"MONTHLY_BUDGET_EUR": "1000000", "DAILY_BUDGET_EUR": "100000"},
            rows=args.rows,
        ),
    ]
    if args.only:
        keys = ("before", "now", "budgets")
        configs = [config for key, config in zip(keys, configs, strict=True) if key in args.only]
    tmp = Path(tempfile.mkdtemp(prefix="octoprovider-bench-burst-"))
    results = []
    try:
        for config in configs:
            results.append((config, run(config, args=args, base_env=base_env, tmp=tmp)))
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"machine: {os.cpu_count()} cores shared by gunicorn, PostgreSQL and this script; {args.creates} creates at"
        f" once, Hetzner (sandbox) answering {LATENCY}; {args.pollers} running instances polled {args.rate:g}/s each"
    )
    print(
        "| configuration | creates answered 200 within 30 s | slowest create | slowest poll during the burst |"
        " polls during the burst | burst lasted | workers, RSS after | Hetzner 429 | targets |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    met = [report(config, outcome, args.creates) for config, outcome in results]
    now_met = all(ok for (config, _), ok in zip(results, met, strict=True) if not config.name.startswith("before"))
    print(
        f"targets (all {args.creates} answer 200, slowest <= {TARGET_SLOWEST_CREATE:.0f} s, polls p99 <= "
        f"{TARGET_POLL_P99 * 1000:.0f} ms and none failed, no Hetzner 429) for the configuration shipped now: "
        + ("targets met" if now_met else "targets NOT met")
    )


if __name__ == "__main__":
    main()
