"""Operators are told when money or agents are at risk: by e-mail and by webhook, once when an alert starts
and once when it clears, across reconcile passes on the simulated clock, against real local servers."""

import email
import email.policy
import io
import json
import logging
import socket
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.core.management import call_command

from instances.models import Instance
from octoprovider import config, hetzner
from octoprovider.core import clock
from octoprovider.hetzner import budget as rate_budget
from octoprovider.operations import costing
from octoprovider.operations.alerts import alerts_after_pass
from octoprovider.operations.models import Alert
from octoprovider.operations.reconciler import reconcile_pass
from staticips.models import StaticIP
from tests.conftest import in_threads
from tests.services.test_budgets import on_postgresql
from tests.test_settings import manage_check

WEBHOOK_SECRET = "T0000/B0000/webhook-secret-xyz"
RECIPIENTS = ["ops@example.com", "oncall@example.com"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An SMTP server's handler that keeps what it receives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    @property
    def subjects(self) -> list[str]:
        return [message["Subject"] for message in self.messages]

    def body(self, index: int) -> str:
        return self.messages[index].get_content().replace("\r\n", "\n")


@pytest.fixture
def smtp(settings, monkeypatch):
    """A real SMTP server on a free local port, and Django's SMTP backend configured by EMAIL_URL to reach it."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{port}")
    for name, value in config.read_email_url("EMAIL_URL").items():
        setattr(settings, name, value)
    settings.ALERT_EMAILS = RECIPIENTS
    yield inbox
    controller.stop()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.posts.append({"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)})
        status = server.answers.pop(0) if server.answers else 200
        if server.delay:
            threading.Event().wait(server.delay)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(settings):
    """A real HTTP server in a thread that takes the webhook's POSTs (and answers what `answers` says, then 200)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.posts, server.answers, server.delay = [], [], 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hooks/{WEBHOOK_SECRET}"
    yield server
    server.shutdown()
    server.server_close()


def texts(webhook) -> list[str]:
    return [post["body"]["text"] for post in webhook.posts]


def later(sandbox, seconds: float) -> None:
    sandbox.clock.advance(seconds)
    clock.advance(seconds)


def hourly_spend() -> Decimal:
    return costing.spend(hetzner.hourly_prices()).per_hour


# --- Budgets: at 80 %, reached, and back -------------------------------------------------------------


@pytest.mark.django_db
def test_a_budget_at_80_percent_and_reached_is_told_once_each_by_mail_and_webhook_and_once_when_it_clears(
    octoperf, settle, settings, smtp, webhook
):
    instance_id = octoperf.create()
    per_hour = hourly_spend()
    settings.MAX_HOURLY_SPEND_EUR = (per_hour / Decimal("0.9")).quantize(Decimal("0.0001"))

    settle(1, full=True)

    assert smtp.subjects == ["[octoprovider default] ALERT: MAX_HOURLY_SPEND_EUR at 80 % or more"]
    assert smtp.recipients == [RECIPIENTS]
    body = smtp.body(0)
    assert f"{per_hour:.4f} EUR of {settings.MAX_HOURLY_SPEND_EUR:.4f} EUR spent (90 %), per hour now" in body
    assert texts(webhook) == [body.strip()]
    assert webhook.posts[0]["path"] == f"/hooks/{WEBHOOK_SECRET}"
    assert webhook.posts[0]["type"] == "application/json"
    assert set(webhook.posts[0]["body"]) == {"text"}

    settle(30, full=True)
    settle(30, full=True)
    assert len(smtp.messages) == len(webhook.posts) == 1  # still at 90 %: nothing new to say

    settings.MAX_HOURLY_SPEND_EUR = per_hour  # nothing more fits: creates answer 429
    settle(30, full=True)
    settle(30, full=True)
    assert smtp.subjects[1:] == ["[octoprovider default] ALERT: MAX_HOURLY_SPEND_EUR reached: creates answer 429"]
    assert "(100 %)" in smtp.body(1) and "0.0000 EUR left" in smtp.body(1)
    assert len(webhook.posts) == 2

    octoperf.delete(instance_id)
    settings.MAX_HOURLY_SPEND_EUR = per_hour * 10
    settle(30, full=True)
    settle(30, full=True)
    settle(30, full=True)

    assert sorted(smtp.subjects[2:]) == [
        "[octoprovider default] RESOLVED: MAX_HOURLY_SPEND_EUR at 80 % or more",
        "[octoprovider default] RESOLVED: MAX_HOURLY_SPEND_EUR reached: creates answer 429",
    ]
    assert "Last seen: MAX_HOURLY_SPEND_EUR" in smtp.body(2)
    assert sorted(text.splitlines()[0] for text in texts(webhook)[2:]) == sorted(smtp.subjects[2:])
    assert len(smtp.messages) == len(webhook.posts) == 4
    assert not Alert.objects.filter(cleared_at=None, started_at__isnull=False).exists()


# --- Hetzner out of reach ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_hetzner_unreachable_is_told_only_after_five_minutes_and_when_it_answers_again(
    octoperf, sandbox, settle, smtp, webhook
):
    octoperf.create()
    settle(30, full=True)
    sandbox.inject_fault("GET", r"/servers.*", times=10**6)

    settle(1, full=True)
    settle(120, full=True)
    settle(120, full=True)  # 4 minutes: it may be a blip
    assert smtp.messages == [] and webhook.posts == []

    settle(90, full=True)
    assert smtp.subjects == ["[octoprovider default] ALERT: Hetzner unreachable for over 5 minutes"]
    assert "Reconcile pass stopped early" in smtp.body(0)
    assert len(webhook.posts) == 1

    sandbox.calm()
    settle(30, full=True)
    settle(30, full=True)
    assert smtp.subjects[1:] == ["[octoprovider default] RESOLVED: Hetzner unreachable for over 5 minutes"]
    assert len(webhook.posts) == 2


@pytest.mark.django_db
def test_a_short_hetzner_outage_is_never_told(octoperf, sandbox, settle, smtp, webhook):
    octoperf.create()
    sandbox.inject_fault("GET", r"/servers.*", times=10**6)
    settle(1, full=True)
    settle(200, full=True)
    sandbox.calm()
    settle(30, full=True)
    sandbox.inject_fault("GET", r"/servers.*", times=10**6)
    settle(200, full=True)  # out again, but not 5 minutes in a row
    settle(30, full=True)

    assert smtp.messages == [] and webhook.posts == []


@pytest.mark.django_db
def test_a_rate_budget_exhausted_for_five_minutes_is_told_and_cleared_once_passes_run_again(
    octoperf, sandbox, settle, smtp, webhook
):
    octoperf.create()

    def spent_elsewhere():  # another process keeps spending Hetzner's budget
        rate_budget.record(limit=3600, remaining=0)

    for seconds in (1, 120, 120):
        spent_elsewhere()
        assert settle(seconds, full=True).deferred
    assert smtp.messages == []  # 4 minutes

    spent_elsewhere()
    settle(90, full=True)
    assert smtp.subjects == ["[octoprovider default] ALERT: Hetzner's rate budget exhausted for over 5 minutes"]
    assert "Full pass deferred: Hetzner's rate budget is estimated at 90 of 3600 requests" in smtp.body(0)
    assert len(webhook.posts) == 1

    rate_budget.record(limit=3600, remaining=3000)
    settle(30, full=True)
    settle(30, full=True)
    assert smtp.subjects[1:] == ["[octoprovider default] RESOLVED: Hetzner's rate budget exhausted for over 5 minutes"]
    assert len(webhook.posts) == 2


# --- Deletes stuck ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_delete_stuck_for_ten_minutes_is_told_with_the_instance_and_cleared_once_it_is_gone(
    octoperf, sandbox, settle, smtp, webhook
):
    instance_id = octoperf.create()
    settle(60, full=True)
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="locked", status=423, times=10**6)
    octoperf.delete(instance_id)

    for _ in range(9):
        settle(60, full=True)
    assert smtp.messages == []
    settle(120, full=True)

    assert smtp.subjects == ["[octoprovider default] ALERT: Instance deletes stuck for over 10 minutes"]
    assert f"1 instances still deleting at Hetzner after 10 minutes (billed until gone): {instance_id} (cx23)" in (
        smtp.body(0)
    )
    assert instance_id in texts(webhook)[0]

    sandbox.calm()
    for _ in range(3):
        settle(30, full=True)
    assert Instance.objects.get(pk=instance_id).status == Instance.Status.TERMINATED
    assert smtp.subjects[1:] == ["[octoprovider default] RESOLVED: Instance deletes stuck for over 10 minutes"]
    assert len(webhook.posts) == 2


# --- Leaks found by the sweep -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_server_of_ours_unknown_to_the_database_is_told_with_its_id_and_cleared_once_deleted(
    sandbox, settle, smtp, webhook
):
    body = {
        "name": "octoperf-i-unknown",
        "server_type": "cx23",
        "image": "docker-ce",
        "location": "fsn1",
        "labels": hetzner.ownership_labels("i-unknown"),
    }
    _, _, answer = sandbox.handle("POST", "/servers", {}, body, {"Authorization": "Bearer t"})
    server_id = answer["server"]["id"]

    settle(60, full=True)

    assert smtp.subjects == ["[octoprovider default] ALERT: Leaked or unknown resources at Hetzner"]
    assert f"server {server_id} (octoperf-i-unknown) unknown to the database" in smtp.body(0)
    assert f"server {server_id}" in texts(webhook)[0]

    settle(30, full=True)
    assert len(smtp.messages) == 1
    call_command("cleanup", "--grace", "0", stdout=io.StringIO())
    settle(30, full=True)
    settle(30, full=True)

    assert smtp.subjects[1:] == ["[octoprovider default] RESOLVED: Leaked or unknown resources at Hetzner"]
    assert len(webhook.posts) == 2


# --- The reconciler stalled, seen by cleanup --------------------------------------------------------


@pytest.mark.django_db
def test_cleanup_tells_a_stalled_reconciler_and_the_reconciler_clears_it_when_it_passes_again(
    sandbox, settle, smtp, webhook
):
    settle(1, full=True)
    later(sandbox, 5 * 60)
    call_command("cleanup", stdout=io.StringIO())
    assert smtp.messages == []  # five minutes without a pass: not a stall

    later(sandbox, 6 * 60)
    call_command("cleanup", stdout=io.StringIO())
    call_command("cleanup", stdout=io.StringIO())

    assert smtp.subjects == ["[octoprovider default] ALERT: The reconciler has stalled"]
    assert "No reconcile pass has finished since" in smtp.body(0) and "(11 minutes)" in smtp.body(0)
    assert len(webhook.posts) == 1

    settle(1, full=True)
    assert smtp.subjects[1:] == ["[octoprovider default] RESOLVED: The reconciler has stalled"]
    assert len(webhook.posts) == 2


# --- Static IPs never used --------------------------------------------------------------------------


@pytest.mark.django_db
def test_static_ips_never_used_for_a_day_are_told_with_their_ids_addresses_and_price(
    octoperf, sandbox, settle, smtp, webhook
):
    ip_id = octoperf.allocate()
    settle(60, full=True)
    later(sandbox, 23 * 3600)
    settle(60, full=True)
    assert smtp.messages == []  # allocated ahead of a test: fine for a day

    later(sandbox, 3600)
    settle(60, full=True)

    address = StaticIP.objects.get(pk=ip_id).address
    price = hetzner.hourly_prices().primary_ipv4["fsn1"]
    assert smtp.subjects == ["[octoprovider default] ALERT: Static IPs never used for over a day"]
    assert f"1 static IPs allocated over a day ago were never associated by OctoPerf: {ip_id} ({address}, fsn1)." in (
        smtp.body(0)
    )
    assert f"They cost {price:.4f} EUR/h together." in smtp.body(0)

    octoperf.release(ip_id)
    settle(30, full=True)
    settle(30, full=True)
    assert smtp.subjects[1:] == ["[octoprovider default] RESOLVED: Static IPs never used for over a day"]
    assert len(webhook.posts) == 2


# --- Failures -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failed_send_is_logged_without_the_webhook_url_and_sent_once_on_a_later_pass(
    octoperf, settle, settings, smtp, webhook, caplog
):
    octoperf.create()
    settings.MAX_HOURLY_SPEND_EUR = hourly_spend()
    webhook.answers = [500, 502]
    working_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nobody listens there
    caplog.set_level(logging.INFO)

    report = settle(1, full=True)

    assert not report.errors  # the pass itself went fine
    assert smtp.messages == []
    assert len(webhook.posts) == 2  # both alerts tried, both refused
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "not sent by webhook: webhook answered HTTP 500" in logged
    assert "not sent by e-mail: e-mail failed (ConnectionRefusedError" in logged
    assert WEBHOOK_SECRET not in logged and "/hooks/" not in logged
    alert = Alert.objects.get(key="budget:MAX_HOURLY_SPEND_EUR:reached")
    assert "webhook answered HTTP 502" in alert.send_error

    settle(30, full=True)  # the webhook answers again; the mail server is still down
    assert smtp.messages == []
    assert len(webhook.posts) == 4

    settings.EMAIL_PORT = working_port
    settle(30, full=True)
    settle(30, full=True)

    # Each alert's start once on each channel, however many passes failed before.
    assert sorted(smtp.subjects) == [
        "[octoprovider default] ALERT: MAX_HOURLY_SPEND_EUR at 80 % or more",
        "[octoprovider default] ALERT: MAX_HOURLY_SPEND_EUR reached: creates answer 429",
    ]
    assert len(webhook.posts) == 4
    assert not Alert.objects.exclude(send_error="").exists()
    assert WEBHOOK_SECRET not in "\n".join(record.getMessage() for record in caplog.records)


@pytest.mark.django_db
def test_an_unreachable_webhook_never_breaks_the_pass_nor_leaks_its_url(octoperf, settle, settings, caplog):
    octoperf.create()
    settings.MAX_HOURLY_SPEND_EUR = hourly_spend()
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/hooks/{WEBHOOK_SECRET}"

    report = settle(1, full=True)

    assert not report.errors
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "webhook unreachable (ConnectionRefusedError)" in logged
    assert WEBHOOK_SECRET not in logged
    assert Alert.objects.filter(start_posted_at=None, started_at__isnull=False).count() == 2


@pytest.mark.django_db
def test_a_check_that_fails_leaves_the_others_and_the_pass_alone(octoperf, settle, settings, smtp, monkeypatch):
    octoperf.create()
    settings.MAX_HOURLY_SPEND_EUR = hourly_spend()
    monkeypatch.setattr("octoprovider.operations.alerts.check_stuck_deletes", lambda now: 1 / 0)  # a bug in one check

    report = reconcile_pass(full=True)

    assert not report.errors
    assert len(smtp.messages) == 2  # the budget's alerts still went out


# --- Two reconcilers --------------------------------------------------------------------------------


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_reconcilers_open_clear_and_send_each_alert_once(octoperf, settings, smtp, webhook):
    octoperf.create()
    per_hour = hourly_spend()
    webhook.delay = 0.3  # the first sender is still sending when the other one looks
    from octoprovider.core.reports import PassReport

    def both_pass():
        # The checks of two reconcilers' full passes, at the same moment.
        in_threads(2, lambda i: alerts_after_pass(PassReport(), full=True))

    settings.MAX_HOURLY_SPEND_EUR = per_hour
    for _ in range(3):
        both_pass()
    assert sorted(smtp.subjects) == [
        "[octoprovider default] ALERT: MAX_HOURLY_SPEND_EUR at 80 % or more",
        "[octoprovider default] ALERT: MAX_HOURLY_SPEND_EUR reached: creates answer 429",
    ]
    assert len(webhook.posts) == 2

    settings.MAX_HOURLY_SPEND_EUR = per_hour * 10
    for _ in range(3):
        both_pass()
    assert len(smtp.messages) == 4 and len(webhook.posts) == 4
    assert Alert.objects.filter(family="budget").count() == 2


# --- The console --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_shows_the_open_alerts_and_says_so_when_there_are_none(admin_client, octoperf, settle, settings):
    page = admin_client.get("/admin/").content.decode()
    assert "No open alerts." in page

    octoperf.create()
    settings.MAX_HOURLY_SPEND_EUR = hourly_spend()
    settle(1, full=True)  # no channel set: the alerts are still kept and shown

    page = admin_client.get("/admin/").content.decode()
    assert "No open alerts." not in page
    assert "MAX_HOURLY_SPEND_EUR reached: creates answer 429" in page
    assert "MAX_HOURLY_SPEND_EUR at 80 % or more" in page
    assert "(100 %)" in page
    assert admin_client.get("/admin/operations/alert/").status_code == 200


@pytest.mark.django_db
def test_a_staff_user_without_permissions_sees_no_alerts(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x" * 12, is_staff=True)
    client.force_login(user)

    page = client.get("/admin/").content.decode()

    assert 'id="alerts"' not in page


# --- Settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EMAIL_URL": "bogus://mail.example.com"}, "EMAIL_URL"),
        ({"EMAIL_URL": "smtp://", "ALERT_EMAILS": "ops@example.com"}, "EMAIL_URL"),
        ({"EMAIL_URL": "smtp://mail.example.com:25", "ALERT_EMAILS": "ops@example.com,nobody"}, "ALERT_EMAILS"),
        ({"ALERT_EMAILS": "ops@example.com"}, "EMAIL_URL"),
        ({"ALERT_WEBHOOK_URL": f"ftp://hooks.example.com/{WEBHOOK_SECRET}"}, "ALERT_WEBHOOK_URL"),
    ],
)
def test_a_bad_alert_setting_stops_start_up_naming_it_and_never_showing_a_secret(env, named):
    result = manage_check(DEBUG="true", **env)

    assert result.returncode != 0
    assert named in result.stderr
    assert WEBHOOK_SECRET not in result.stderr
    assert "Traceback" not in result.stderr


def test_alert_settings_start_with_good_values():
    result = manage_check(
        DEBUG="true",
        EMAIL_URL="smtp+tls://alerts:a-password@mail.example.com:587",
        ALERT_EMAILS="ops@example.com, oncall@example.com",
        ALERT_WEBHOOK_URL="https://hooks.slack.com/services/T0000/B0000/XXXX",
    )

    assert result.returncode == 0, result.stderr
