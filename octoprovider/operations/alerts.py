"""Alerts: tell the operators when money or agents are at risk, once when it starts and once when it clears.

Every full reconcile pass runs the checks below; `cleanup` (started by its own timer) runs the one a
stalled reconciler cannot run itself, whether the reconciler still passes.

- budget: a budget in euros at 80 % or more, and one reached (two alerts per budget);
- stuck-deletes: an instance `deleting`, or a static IP `releasing`, for over 10 minutes;
- leaks: servers and Primary IPs of ours that no live row accounts for, found by the sweep;
- hetzner-unreachable, hetzner-rate: Hetzner could not be listed, or its rate budget held the passes
  back, for over 5 minutes;
- reconciler: no reconcile pass finished for 10 minutes;
- unused-static-ips: static IPs allocated over a day ago that OctoPerf never associated.

A check that cannot tell (no prices from Hetzner, a pass that never reached Hetzner) leaves its
alerts as they are.

The state lives in the database (`Alert`), so that two reconcilers, or one restarted, never announce
anything twice: an alert opens by an insert that a unique constraint allows once per key, clears by a
compare-and-set on `cleared_at`, and its notifications are claimed by a compare-and-set on
`sending_since`, then recorded per channel. A notification that fails is logged and tried again on
each later pass, for a day; nothing here ever breaks a pass.
"""

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.core.reports import PassReport
from octoprovider.operations import dashboard
from octoprovider.operations.models import Alert, ReconcilerRun
from staticips.models import StaticIP
from staticips.selectors import static_ips_never_used

logger = logging.getLogger(__name__)

BUDGET_WARNING_PERCENT = 80
STUCK_AFTER = timedelta(minutes=10)
HETZNER_OUT_AFTER = timedelta(minutes=5)
RECONCILER_STALLED_AFTER = timedelta(minutes=10)
UNUSED_STATIC_IP_AFTER = timedelta(days=1)
# A process that died while sending leaves its claim behind: another one takes it over after this.
SEND_CLAIM = timedelta(minutes=2)
# Notifications still unsent a day after their event (a channel down all along) are given up.
SEND_GIVE_UP = timedelta(days=1)
WEBHOOK_TIMEOUT = 10
# Rows that only remember since when a resource is in a state; never an alert themselves.
_WATCH = "watch:"
_IDS_SHOWN = 20


@dataclass(frozen=True)
class Condition:
    """One thing at risk now: its key (stable while it lasts), what it is, and how much, with the ids."""

    key: str
    title: str
    detail: str
    # How long it must hold before it is an alert (Hetzner out for a minute is no news).
    after: timedelta = timedelta(0)


@dataclass(frozen=True)
class Check:
    """What one check found: the conditions of its family that hold; the family's other alerts have cleared."""

    family: str
    holding: list[Condition] = field(default_factory=list)


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:_IDS_SHOWN])
    return shown + (f" and {len(ids) - _IDS_SHOWN} more" if len(ids) > _IDS_SHOWN else "")


# --- The checks ------------------------------------------------------------------------------------


def check_budgets() -> Check | None:
    """Each budget in euros at 80 % or more, and reached (creates then answer 429)."""
    figures = dashboard.budgets()
    if not figures["set"]:
        return Check("budget")
    if "error" in figures:
        return None  # no prices: cannot tell
    holding = []
    for row in figures["rows"]:
        currency = figures["currency"]
        places = 4 if row.name == "MAX_HOURLY_SPEND_EUR" else 2  # a server costs cents an hour
        detail = (
            f"{row.name}: {row.spent:.{places}f} {currency} of {row.limit:.{places}f} {currency} spent "
            f"({row.percent_used} %), {row.meaning}; {max(row.left, 0):.{places}f} {currency} left."
        )
        if row.spent * 100 >= row.limit * BUDGET_WARNING_PERCENT:
            holding.append(
                Condition(
                    f"budget:{row.name}:{BUDGET_WARNING_PERCENT}",
                    f"{row.name} at {BUDGET_WARNING_PERCENT} % or more",
                    detail,
                )
            )
        if row.spent >= row.limit:
            holding.append(Condition(f"budget:{row.name}:reached", f"{row.name} reached: creates answer 429", detail))
    return Check("budget", holding)


def _since(family: str, keys: list[str], now: datetime) -> dict[str, datetime]:
    """Return since when each of `keys` has been seen, remembering the new ones and forgetting the others."""
    family = _WATCH + family
    watched = {f"{family}:{key}": key for key in keys}
    rows = dict(Alert.objects.filter(family=family, cleared_at=None).values_list("key", "since"))
    gone = [key for key in rows if key not in watched]
    if gone:
        Alert.objects.filter(family=family, key__in=gone, cleared_at=None).delete()
    for key in watched:
        if key not in rows:
            _insert(family=family, key=key, title=key, detail="", since=now, started_at=None)
            rows[key] = now
    return {key: rows[watch_key] for watch_key, key in watched.items()}


def check_stuck_deletes(now: datetime) -> Check:
    """Deletes and releases Hetzner has not carried out after 10 minutes: the resources are still billed."""
    deleting = dict(
        Instance.objects.filter(status=Instance.Status.DELETING).values_list("pk", "server_type").order_by("pk")
    )
    releasing = dict(
        StaticIP.objects.filter(status=StaticIP.Status.RELEASING).values_list("pk", "location").order_by("pk")
    )
    # The rows' request times move with every retry: how long each has been in that state is remembered here.
    since = _since("stuck-deletes", [*deleting, *releasing], now)
    stuck = [key for key, at in since.items() if now - at > STUCK_AFTER]
    holding = []
    instances = [f"{pk} ({deleting[pk]})" for pk in stuck if pk in deleting]
    if instances:
        holding.append(
            Condition(
                "stuck-deletes:instances",
                "Instance deletes stuck for over 10 minutes",
                f"{len(instances)} instances still deleting at Hetzner after 10 minutes (billed until gone): "
                f"{_ids(instances)}. See their last error in the console.",
            )
        )
    static_ips = [f"{pk} ({releasing[pk]})" for pk in stuck if pk in releasing]
    if static_ips:
        holding.append(
            Condition(
                "stuck-deletes:static-ips",
                "Static IP releases stuck for over 10 minutes",
                f"{len(static_ips)} static IPs still releasing after 10 minutes (billed until gone): "
                f"{_ids(static_ips)}. See their last error in the console.",
            )
        )
    return Check("stuck-deletes", holding)


def check_leaks(report: PassReport) -> Check | None:
    """What the sweep found of ours that no live row accounts for (the reconciler or cleanup deletes it)."""
    if report.stopped or report.deferred:
        return None  # the sweep did not see the fleet
    if not report.leaks:
        return Check("leaks")
    detail = f"The sweep found {len(report.leaks)} resources no live row accounts for: {_ids(report.leaks)}."
    return Check("leaks", [Condition("leaks", "Leaked or unknown resources at Hetzner", detail)])


def check_hetzner(report: PassReport) -> list[Check]:
    """Hetzner out of reach, or its rate budget below the reserve, for over 5 minutes."""
    if report.deferred:
        # The pass asked Hetzner nothing: whether it answers is not known, and its alert stays as it is.
        title = "Hetzner's rate budget exhausted for over 5 minutes"
        return [Check("hetzner-rate", [Condition("hetzner-rate", title, report.deferred, after=HETZNER_OUT_AFTER)])]
    unreachable = []
    if report.stopped:
        detail = f"{report.stopped} States go stale; creates and deletes answer 503."
        title = "Hetzner unreachable for over 5 minutes"
        unreachable = [Condition("hetzner-unreachable", title, detail, after=HETZNER_OUT_AFTER)]
    return [Check("hetzner-rate"), Check("hetzner-unreachable", unreachable)]


def check_reconciler(now: datetime) -> Check:
    """No reconcile pass finished for 10 minutes (never having run is not a stall: the dashboard says so)."""
    last = ReconcilerRun.objects.aggregate(last=Max("finished_at"))["last"]
    if last is None or now - last <= RECONCILER_STALLED_AFTER:
        return Check("reconciler")
    minutes = int((now - last).total_seconds() // 60)
    detail = (
        f"No reconcile pass has finished since {last:%Y-%m-%d %H:%M:%S} UTC ({minutes} minutes): states go stale "
        f"and deletes, releases and static-IP moves wait. Is `manage.py reconcile --loop` running?"
    )
    return Check("reconciler", [Condition("reconciler", "The reconciler has stalled", detail)])


def check_unused_static_ips(now: datetime) -> Check:
    """Static IPs allocated over a day ago that OctoPerf never associated: billed for nothing."""
    unused = list(
        static_ips_never_used()
        .filter(created_at__lt=now - UNUSED_STATIC_IP_AFTER)
        .order_by("created_at")
        .values_list("pk", "address", "location")
    )
    if not unused:
        return Check("unused-static-ips")
    ids = [f"{pk} ({address or 'no address'}, {location})" for pk, address, location in unused]
    cost = ""
    try:
        prices = hetzner.hourly_prices()
        hourly = [prices.primary_ipv4.get(location) for _, _, location in unused]
        if None not in hourly:
            cost = f" They cost {sum(hourly):.4f} {prices.currency}/h together."
    except HetznerError:
        pass  # said without the price
    detail = (
        f"{len(unused)} static IPs allocated over a day ago were never associated by OctoPerf: {_ids(ids)}.{cost} "
        f"Release them from the static IP list if no test needs them."
    )
    return Check("unused-static-ips", [Condition("unused-static-ips", "Static IPs never used for over a day", detail)])


# --- Opening and clearing --------------------------------------------------------------------------


def _insert(**fields) -> bool:
    try:
        with transaction.atomic():
            Alert.objects.create(**fields)
    except IntegrityError:
        return False  # another process opened it first (one_open_alert_per_key)
    return True


def alerts_evaluate(check: Check, *, now: datetime) -> None:
    """Open what starts holding, clear what stopped, and keep the figures of what goes on up to date."""
    holding = {condition.key: condition for condition in check.holding}
    open_rows = {row.key: row for row in Alert.objects.filter(family=check.family, cleared_at=None)}
    for key, condition in holding.items():
        row = open_rows.get(key)
        if row is None:
            started = now if not condition.after else None
            _insert(
                key=key,
                family=check.family,
                title=condition.title,
                detail=condition.detail,
                since=now,
                started_at=started,
            )
        elif row.started_at is None and now - row.since >= condition.after:
            # Held long enough: it becomes an alert (once: a compare-and-set on started_at).
            Alert.objects.filter(pk=row.pk, started_at=None).update(started_at=now, detail=condition.detail)
        elif row.detail != condition.detail:
            Alert.objects.filter(pk=row.pk, cleared_at=None).update(detail=condition.detail)
    for key, row in open_rows.items():
        if key in holding:
            continue
        if row.started_at is None:
            # It did not hold long enough to be news: forget it (unless it became an alert meanwhile).
            Alert.objects.filter(pk=row.pk, started_at=None).delete()
        else:
            Alert.objects.filter(pk=row.pk, cleared_at=None).update(cleared_at=now)


# --- Sending ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    name: str  # the Alert fields' middle word: start_<name>_at, clear_<name>_at
    label: str
    send: Callable[[str, str], None]


def _email(subject: str, text: str) -> None:
    send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, settings.ALERT_EMAILS, fail_silently=False)


def _webhook(subject: str, text: str) -> None:
    # Slack's and Mattermost's incoming webhooks both take {"text": ...}. urllib, not requests: the
    # URL holds the webhook's secret, and nothing here logs it (urllib3 would at DEBUG).
    request = urllib.request.Request(
        settings.ALERT_WEBHOOK_URL,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
        response.read()


def _channels() -> list[Channel]:
    channels = []
    if settings.ALERT_EMAILS:
        channels.append(Channel("emailed", "e-mail", _email))
    if settings.ALERT_WEBHOOK_URL:
        channels.append(Channel("posted", "webhook", _webhook))
    return channels


def _why(channel: Channel, exc: Exception) -> str:
    """Say why a send failed without the webhook's URL (its secret), which urllib's messages may carry."""
    if channel.name == "posted":
        if isinstance(exc, urllib.error.HTTPError):
            return f"webhook answered HTTP {exc.code}"
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"webhook unreachable ({type(reason).__name__})"
    return f"e-mail failed ({type(exc).__name__}: {exc})"[:200]


def message(alert: Alert, event: str) -> tuple[str, str]:
    """Return the subject and the text of the notification of `event` ("start" or "clear")."""
    where = f"octoprovider {settings.OCTOPROVIDER_DEPLOYMENT}"
    if event == "start":
        subject = f"[{where}] ALERT: {alert.title}"
        return subject, f"{subject}\n{alert.detail}\nSince {alert.since:%Y-%m-%d %H:%M} UTC."
    lasted = int((alert.cleared_at - alert.since).total_seconds() // 60)
    subject = f"[{where}] RESOLVED: {alert.title}"
    text = (
        f"{subject}\nFrom {alert.since:%Y-%m-%d %H:%M} to {alert.cleared_at:%Y-%m-%d %H:%M} UTC ({lasted} minutes).\n"
        f"Last seen: {alert.detail}"
    )
    return subject, text


def alerts_deliver(*, now: datetime) -> None:
    """Send the notifications due on every channel set, each once; a failed one waits for a later pass."""
    channels = _channels()
    if not channels:
        return
    unsent = Q()
    for channel in channels:
        unsent |= Q(**{f"start_{channel.name}_at": None})
        unsent |= Q(cleared_at__isnull=False, **{f"clear_{channel.name}_at": None})
    recent = now - SEND_GIVE_UP
    due = (
        Alert.objects.filter(started_at__isnull=False)
        .filter(Q(started_at__gte=recent) | Q(cleared_at__gte=recent))
        .filter(unsent)
        .order_by("started_at")
        .values_list("pk", flat=True)
    )
    for pk in list(due):
        _send_claimed(pk, channels, now)


def _send_claimed(pk: int, channels: list[Channel], now: datetime) -> None:
    free = Q(sending_since=None) | Q(sending_since__lt=now - SEND_CLAIM)
    if not Alert.objects.filter(free, pk=pk).update(sending_since=now):
        return  # another process is sending it
    alert = Alert.objects.get(pk=pk)  # read after the claim: what the last sender recorded
    errors = []
    for event in ("start", "clear"):
        if event == "clear" and alert.cleared_at is None:
            break
        subject, text = message(alert, event)
        for channel in channels:
            sent_field = f"{event}_{channel.name}_at"
            if getattr(alert, sent_field) is not None:
                continue
            if event == "clear" and getattr(alert, f"start_{channel.name}_at") is None:
                continue  # its start failed: the clear follows it, never comes alone
            try:
                channel.send(subject, text)
            except Exception as exc:  # one channel's failure must stop neither the other nor the pass
                why = _why(channel, exc)
                logger.warning(
                    "Alert %r (%s) not sent by %s: %s; tried again next pass", alert.title, event, channel.label, why
                )
                errors.append(why)
                continue
            setattr(alert, sent_field, clock.now())
            Alert.objects.filter(pk=pk).update(**{sent_field: getattr(alert, sent_field)})
            logger.info("Alert %r (%s) sent by %s", alert.title, event, channel.label)
    Alert.objects.filter(pk=pk).update(sending_since=None, send_error="; ".join(errors)[:300])


# --- Entry points ----------------------------------------------------------------------------------


def _run(checks: list[Callable[[], Check | list[Check] | None]], now: datetime) -> None:
    for check in checks:
        try:
            found = check()
            for one in found if isinstance(found, list) else [found]:
                if one is not None:
                    alerts_evaluate(one, now=now)
        except Exception:  # one check's failure must stop neither the others nor the pass
            logger.exception("Alerts: a check failed; it runs again after the next full pass")
    try:
        alerts_deliver(now=now)
    except Exception:
        logger.exception("Alerts: sending failed; tried again after the next full pass")


def alerts_after_pass(report: PassReport, *, full: bool) -> None:
    """Run every check after a full reconcile pass, and send what is due. Never raises."""
    if not full:
        return
    now = clock.now()
    _run(
        [
            check_budgets,
            lambda: check_stuck_deletes(now),
            lambda: check_leaks(report),
            lambda: check_hetzner(report),
            lambda: check_reconciler(now),
            lambda: check_unused_static_ips(now),
        ],
        now,
    )


def alerts_check_reconciler() -> None:
    """Check that the reconciler still passes (from cleanup: a stalled reconciler cannot say so). Never raises."""
    now = clock.now()
    _run([lambda: check_reconciler(now)], now)


def open_alerts() -> list[Alert]:
    """The alerts that hold now, oldest first, for the dashboard."""
    return list(Alert.objects.filter(started_at__isnull=False, cleared_at=None).order_by("since", "pk"))
