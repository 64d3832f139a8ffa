"""deploy/nginx.conf as a distribution's nginx runs it, in front of a real gunicorn: the config loads,
Let's Encrypt's challenge is served on port 80, the contract is proxied over HTTPS, and no log line of
nginx's carries OctoPerf's token, whatever path a caller sends it in.

The shipped site is rendered into a temporary directory (free ports, a self-signed certificate, its own
logs, webroot and pid file) and run as the current user with `nginx -p <dir> -c <conf>`; the paths,
ports and upstream are the only things substituted.
"""

import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ops.test_log_format import environment, free_port, manage

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
HOST = "octoprovider.example.com"
# Long, and unlike anything else in the logs: a line holding it is a leak.
TOKEN = "Nginx-Test-Token-5f2c9a71e04b4d8e9c3a6b1d"

needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="no nginx binary: apt-get install nginx-light (.ci/run installs it)"
)


def wait_until_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def self_signed_certificate(directory: Path) -> None:
    directory.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={HOST}",
            "-keyout",
            str(directory / "privkey.pem"),
            "-out",
            str(directory / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def substitute(text: str, old: str, new: str) -> str:
    # Each substitution must apply: a renamed path in the shipped file must not go silently untested.
    assert old in text, f"deploy/nginx.conf no longer contains {old!r}"
    return text.replace(old, new)


def missing_modules() -> set[str]:
    built = subprocess.run([NGINX, "-V"], capture_output=True, text=True).stderr
    return set(re.findall(r"--without-http_(\w+)_module", built))


class Nginx:
    """The shipped site, rendered into `directory` and run by this user, proxying to `upstream_port`."""

    def __init__(self, directory: Path, *, upstream_port: int):
        self.directory = directory
        self.http_port, self.https_port = free_port(), free_port()
        self.logs = directory / "logs"
        self.logs.mkdir()
        self.webroot = directory / "www"
        (self.webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
        self_signed_certificate(directory / "tls")

        site = SITE.read_text()
        site = substitute(site, "listen 80;", f"listen 127.0.0.1:{self.http_port};")
        site = substitute(site, "listen 443 ssl", f"listen 127.0.0.1:{self.https_port} ssl")
        for port in ("80", "443"):
            ipv6 = f"[::1]:{self.http_port if port == '80' else self.https_port}" if ipv6_loopback() else None
            line = re.search(rf"\n\s*listen \[::\]:{port}\b[^\n]*", site)
            assert line, f"deploy/nginx.conf has no IPv6 listen on {port}"
            site = site.replace(line[0], line[0].replace(f"[::]:{port}", ipv6) if ipv6 else "")
        site = substitute(site, f"/etc/letsencrypt/live/{HOST}/", f"{directory / 'tls'}/")
        site = substitute(site, "root /var/www/html;", f"root {self.webroot};")
        site = substitute(site, "/var/log/nginx/", f"{self.logs}/")
        site = substitute(site, "http://127.0.0.1:8000;", f"http://127.0.0.1:{upstream_port};")
        (directory / "site.conf").write_text(site)

        missing = missing_modules()
        temp_paths = "".join(
            f"    {module}_temp_path {directory / 'temp' / module};\n"
            for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            if module not in missing
        )
        # As root, nginx's workers would run as nobody, who may not read a private temporary directory.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\nerror_log {self.logs / 'main.error.log'};\n"
            "events { worker_connections 64; }\n"
            f"http {{\n{temp_paths}    include {directory / 'site.conf'};\n}}\n"
        )
        (directory / "temp").mkdir()
        self.process = None

    def command(self, *args: str) -> list[str]:
        return [NGINX, "-p", str(self.directory), "-e", str(self.logs / "main.error.log"), "-c", str(self.conf), *args]

    def test_config(self) -> subprocess.CompletedProcess:
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self) -> "Nginx":
        output = self.directory / "nginx.out"
        with open(output, "w") as out:
            self.process = subprocess.Popen(self.command("-g", "daemon off;"), stdout=out, stderr=subprocess.STDOUT)
        wait_until_listening(self.https_port, self.process, output)
        wait_until_listening(self.http_port, self.process, output)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def request(self, method: str, path: str, *, tls: bool = True, body: str | None = None):
        """Send `path` exactly as written (no normalising); return (status, headers, body)."""
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=30, context=context)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            headers = {"Host": HOST}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def log_lines(self) -> dict[str, list[str]]:
        return {path.name: path.read_text().splitlines() for path in self.logs.iterdir()}

    def access_lines(self) -> list[str]:
        return self.log_lines()["octoprovider.access.log"]


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    """octoprovider under gunicorn (gunicorn.conf.py), on the simulated cloud, with TOKEN as OctoPerf's token."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    env = environment(
        tmp,
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        LOG_FORMAT="text",
        OCTOPERF_API_TOKENS=TOKEN,
        ALLOWED_HOSTS=HOST,
    )
    assert manage(env, "migrate", "--noinput").returncode == 0
    log = tmp / "gunicorn.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "octoprovider.wsgi", "--config", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(int(env["PORT"]), server, log)
        yield int(env["PORT"])
    finally:
        stop(server)


@pytest.fixture(scope="module")
def site(tmp_path_factory, gunicorn):
    nginx = Nginx(tmp_path_factory.mktemp("nginx"), upstream_port=gunicorn).start()
    yield nginx
    nginx.stop()


@pytest.fixture
def site_without_upstream(tmp_path):
    """The site with gunicorn down: nothing listens on its upstream port."""
    nginx = Nginx(tmp_path, upstream_port=free_port()).start()
    yield nginx
    nginx.stop()


# Every shape a path token comes in: the contract's paths, typos, the bare base URL with and without a
# slash, doubled slashes, other cases, an encoded slash, query strings, and every method.
STATE = "/instances/i-0123456789abcdef0/state?region=fsn1&zone=default"
PATH_SHAPES = [
    ("GET", f"/octoperf/{TOKEN}{STATE}"),
    ("POST", f"/octoperf/{TOKEN}/instances"),
    ("PUT", f"/octoperf/{TOKEN}/instances/i-0123456789abcdef0"),
    ("DELETE", f"/octoperf/{TOKEN}/instances?instanceId=i-0123456789abcdef0"),
    ("POST", f"/octoperf/{TOKEN}/static-ips/allocate"),
    ("PUT", f"/octoperf/{TOKEN}/static-ips/associate"),
    ("PUT", f"/octoperf/{TOKEN}/static-ips/dissociate"),
    ("DELETE", f"/octoperf/{TOKEN}/static-ips/release?region=fsn1&zone=default&id=ip-0"),
    ("GET", f"/octoperf/{TOKEN}/typo/x"),
    ("GET", f"/octoperf/{TOKEN}/instancez"),
    ("GET", f"/octoperf/{TOKEN}"),
    ("GET", f"/octoperf/{TOKEN}/"),
    ("GET", f"/octoperf/{TOKEN}?region=fsn1"),
    ("GET", f"/octoperf//{TOKEN}/instances"),
    ("GET", f"/octoperf///{TOKEN}{STATE}"),
    ("GET", f"//octoperf/{TOKEN}/instances"),
    ("GET", f"/OCTOPERF/{TOKEN}/instances"),
    ("POST", f"/OctoPerf/{TOKEN}/Instances"),
    ("GET", f"/octoperf%2F{TOKEN}/instances"),
    ("GET", f"/octoperf/{TOKEN}/instances?token={TOKEN[:8]}&x=1"),
    ("DELETE", f"/octoperf/{TOKEN}/typo"),
    ("PUT", f"/octoperf/{TOKEN}"),
    ("HEAD", f"/octoperf/{TOKEN}{STATE}"),
    ("OPTIONS", f"/octoperf/{TOKEN}/instances"),
    ("PATCH", f"/octoperf//{TOKEN}/instances"),
]


def assert_no_line_carries_the_token(nginx: Nginx, requests_sent: int) -> None:
    # nginx writes a request's access line once the request is over, which may be just after the
    # client has read the answer: wait for the last lines (a few seconds at most).
    deadline = time.monotonic() + 5
    while len(nginx.access_lines()) < requests_sent and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = nginx.log_lines()
    leaks = [(name, line) for name, lines in logs.items() for line in lines if TOKEN in line]
    assert leaks == []
    # The requests were logged (masked), not left out.
    assert len(logs["octoprovider.access.log"]) >= requests_sent
    assert any("/octoperf/***/instances" in line for line in logs["octoprovider.access.log"])


@needs_nginx
def test_the_shipped_site_passes_nginx_t(tmp_path):
    nginx = Nginx(tmp_path, upstream_port=free_port())

    result = nginx.test_config()
    version = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()

    assert result.returncode == 0, f"{version}\n{result.stderr}"
    assert "syntax is ok" in result.stderr


@needs_nginx
def test_an_acme_challenge_is_served_over_plain_http_and_everything_else_redirects(site):
    (site.webroot / ".well-known" / "acme-challenge" / "t0k3n-abc").write_text("t0k3n-abc.thumbprint")

    challenge = site.request("GET", "/.well-known/acme-challenge/t0k3n-abc", tls=False)
    contract = site.request("GET", f"/octoperf/{TOKEN}{STATE}", tls=False)
    other = site.request("GET", "/.well-known/security.txt", tls=False)

    assert challenge[0] == 200 and challenge[2] == b"t0k3n-abc.thumbprint"
    assert contract[0] == 301 and contract[1]["Location"] == f"https://{HOST}/octoperf/{TOKEN}{STATE}"
    assert other[0] == 301 and other[1]["Location"] == f"https://{HOST}/.well-known/security.txt"


@needs_nginx
def test_the_contract_is_proxied_to_gunicorn_over_https(site):
    status, headers, body = site.request("GET", f"/octoperf/{TOKEN}{STATE}")
    refused, _, _ = site.request("GET", f"/octoperf/not-the-token{STATE}")

    # The app's answer: the token was accepted, the instance is unknown.
    assert status == 404 and headers["Content-Type"].startswith("application/json"), body
    assert "i-0123456789abcdef0" in json.loads(body)["error"]["message"]
    assert headers["X-Request-ID"]
    assert refused == 401


@needs_nginx
def test_no_line_of_nginx_logs_carries_the_token_whatever_the_path(site):
    for method, path in PATH_SHAPES:
        site.request(method, path, body="" if method in ("POST", "PUT", "PATCH") else None)
        site.request(method, path, tls=False)

    assert_no_line_carries_the_token(site, 2 * len(PATH_SHAPES))


@needs_nginx
def test_no_line_of_nginx_logs_carries_the_token_when_gunicorn_is_down(site_without_upstream):
    statuses = {site_without_upstream.request(method, path)[0] for method, path in PATH_SHAPES}

    assert statuses == {502}
    assert_no_line_carries_the_token(site_without_upstream, len(PATH_SHAPES))
    assert all(line.endswith("upstream_status=502") for line in site_without_upstream.access_lines())


def test_the_certbot_steps_of_deployment_md_match_the_site():
    # The site serves the challenges from the webroot certbot writes them to, for the name it certifies,
    # and loads the certificate from where certbot puts it; renewal reloads nginx to read the new one.
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    site = SITE.read_text()
    [certonly] = [line for line in deployment.splitlines() if "certbot certonly" in line]
    webroot, domain = re.search(r"--webroot -w (\S+) -d (\S+)", certonly).groups()

    assert re.search(rf"location \^~ /\.well-known/acme-challenge/ \{{\s*root {re.escape(webroot)};", site)
    assert site.count(f"server_name {domain};") == 2
    assert f"ssl_certificate     /etc/letsencrypt/live/{domain}/fullchain.pem;" in site
    assert f"ssl_certificate_key /etc/letsencrypt/live/{domain}/privkey.pem;" in site
    assert '--deploy-hook "systemctl reload nginx"' in certonly
