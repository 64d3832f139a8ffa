"""Where a state poll's time goes: the WSGI application called in-process, timed and under cProfile.

    .venv/bin/python bench/profile_state.py [--requests 20000] [--top 30]

Runs octoprovider as `bench/state_endpoint_http.py` serves it (DEBUG off, PROMETHEUS_MULTIPROC_DIR
set, PostgreSQL, 1,000 running instances, the token in the path) and the floor (`bench/floor.py`),
each in its own process, calling the WSGI application with the environ gunicorn would build. Prints
CPU microseconds per request for both (without the profiler, the better of two alternating runs), then
both profiles (`--top 0`: none): functions by own time, then by cumulative time. gunicorn's own
work (parsing, the access log) is the same for both and is not in here.
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SERVER = "postgres://postgres@127.0.0.1:5432"
TOKEN = "bench-token-0123456789abcdef0123456789"
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"

CHILD = r"""
import cProfile, io, json, pstats, random, sys, time
app, requests, top, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "seed"
if app == "floor":
    from bench.floor import application
    ids = [f"i-{n:017x}" for n in range(1000)]
else:
    import django
    django.setup()
    from instances.models import Instance
    if seed:
        Instance.objects.bulk_create(
            Instance(region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="docker-ce",
                     status="running", hetzner_id=70_000_000 + n, hetzner_status="running")
            for n in range(1000)
        )
    ids = list(Instance.objects.values_list("id", flat=True))
    from octoprovider.wsgi import application

def environ(instance_id):
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": f"/octoperf/{sys.argv[5]}/instances/{instance_id}/state",
        "QUERY_STRING": "region=fsn1&zone=default", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2", "HTTP_USER_AGENT": "wrk",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }

statuses = []
def start_response(status, headers, exc_info=None):
    statuses.append(status)

def poll():
    result = application(environ(random.choice(ids)), start_response)
    b"".join(result)
    result.close()

for _ in range(500):
    poll()
started = time.process_time()
for _ in range(requests):
    poll()
us = (time.process_time() - started) / requests * 1e6
out = {"us": us, "statuses": sorted(set(statuses))}
if top:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        poll()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    out["profile"] = text.getvalue()
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    database = f"octoprovider_bench_{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="octoprovider-profile-"))
    (tmp / "metrics").mkdir()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(
        DEBUG="false",
        SECRET_KEY="bench-only",
        DATABASE_URL=f"{SERVER}/{database}",
        OCTOPERF_API_TOKENS=TOKEN,
        HCLOUD_TOKEN="bench-never-sent",
        HCLOUD_ENDPOINT="http://127.0.0.1:9/v1",
        HCLOUD_SSH_KEYS="bench",
        DJANGO_SETTINGS_MODULE="octoprovider.settings",
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
        LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
        results = {"state": {"us": []}, "floor": {"us": []}}
        # Timed twice each, alternating, as a neighbour's load comes and goes; profiled once.
        for number, app in enumerate(("state", "floor", "state", "floor")):
            top = args.top if number < 2 else 0
            done = subprocess.run(
                [PYTHON, "-c", CHILD, app, str(args.requests), str(top), "seed" if number == 0 else "-", TOKEN],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=900,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[app]["us"].append(result.pop("us"))
            results[app].update(result)
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    if args.top:
        for app in ("floor", "state"):
            print(f"=== {app} ===\n{results[app]['profile']}")
    for app in ("floor", "state"):
        print(
            f"{app}: {min(results[app]['us']):.0f} us per request in-process, the better of "
            f"{', '.join(f'{us:.0f}' for us in results[app]['us'])} ({args.requests} requests each, "
            f"statuses {results[app]['statuses']})"
        )
    print(f"state / floor time per request: {min(results['state']['us']) / min(results['floor']['us']):.2f}")


if __name__ == "__main__":
    sys.exit(main())
