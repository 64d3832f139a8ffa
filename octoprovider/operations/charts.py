"""The console's pictures: euros per day, instances alive per hour, Hetzner requests per hour, runs' costs.

Drawn here as SVG, on the server: no script, no chart library, nothing fetched from a network. Fills
and strokes are CSS classes that the templates map to the admin's own variables (`--link-fg`,
`--accent`...), and text is `currentColor`, so the pictures follow the admin's light and dark themes.
Each chart has a title and a summary (`<title>`, `<desc>`, `aria-labelledby`), each bar a `<title>`
(its tooltip), and the template shows the figures as a table too.

Hetzner's requests are counted here, one row per hour (`HetznerRequestHour`): the audit keeps only
mutations, and the rate budget only the last answer's figure.
"""

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

import requests
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.hetzner import budget
from octoprovider.operations import costing
from octoprovider.operations.models import HetznerRequestHour

logger = logging.getLogger(__name__)

DAYS = 30
HOURS = 24
HOUR = timedelta(hours=1)
# The request counts are kept a week: the chart shows a day, and a table that grows needs a cleanup.
_REQUESTS_KEPT = timedelta(days=7)
_DEFAULT_RATE_LIMIT = 3600

# The drawing's own units (the SVG scales to its panel's width): room for the axis labels around the plot.
_WIDTH, _HEIGHT = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 14, 30
_GRID_LINES = 4
_PLOT_WIDTH, _PLOT_HEIGHT = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
_BASE = _TOP + _PLOT_HEIGHT  # the baseline the bars stand on


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # the class of its bars; the stylesheet gives it the admin's colour


@dataclass(frozen=True)
class Bar:
    label: str  # under the axis ("" for the bars left unlabelled so that labels do not collide)
    name: str  # in its tooltip and the table: the whole day or hour
    values: tuple[Decimal | int, ...]  # one per series, stacked in order

    @property
    def total(self) -> Decimal | int:
        return sum(self.values)


@dataclass(frozen=True)
class Chart:
    """A bar chart (stacked when it has several series), with an optional limit drawn as a line."""

    id: str
    title: str
    unit: str
    series: tuple[Series, ...]
    bars: tuple[Bar, ...]
    period: str = "day"  # what a bar stands for: "day" or "hour"
    additive: bool = True  # whether the bars add up (euros, requests), or are each a count of their own (instances)
    decimals: int = 0
    limit: int | None = None
    limit_label: str = ""

    def figure(self, value) -> str:
        return f"{value:,.{self.decimals}f}"

    @property
    def summary(self) -> str:
        """Say in one sentence what the chart shows: its text alternative."""
        if not self.bars:
            return f"{self.title}: no figures."
        top = max(self.bars, key=lambda bar: bar.total)
        total = sum(bar.total for bar in self.bars)
        text = f"{self.title}: {len(self.bars)} bars from {self.bars[0].name} to {self.bars[-1].name}; "
        if self.additive:
            text += f"{self.figure(total)} {self.unit} in all, "
        text += f"at most {self.figure(top.total)} ({top.name})"
        if self.limit is not None:
            text += f"; {self.limit_label} {self.limit:,}"
        return text + "."

    @property
    def axis_max(self) -> Decimal:
        """Return the value the top of the plot stands for: the tallest bar or the limit, rounded up.

        Each of the grid's steps is a round figure, and a whole one for counts (no "1.25 instances").
        """
        top = max([bar.total for bar in self.bars] + [self.limit or 0])
        step = nice_ceiling(Decimal(top) / _GRID_LINES)
        if self.decimals == 0:
            step = max(Decimal(1), step.to_integral_value(rounding=ROUND_CEILING))
        return step * _GRID_LINES

    def svg(self) -> SafeString:
        """Draw the chart: the grid with its figures, the bars, the limit if any, and the baseline."""
        top = self.axis_max
        slot = _PLOT_WIDTH / max(1, len(self.bars))
        parts = [self._opening(), *self._grid(top)]
        for index, bar in enumerate(self.bars):
            parts += self._bar(bar, x=_LEFT + index * slot + slot * 0.1, slot=slot, top=top)
        if self.limit is not None and top:
            parts.append(self._limit_line(top))
        parts.append(
            format_html(
                '<line class="axis-line" x1="{}" x2="{}" y1="{}" y2="{}"/>', _LEFT, _WIDTH - _RIGHT, _BASE, _BASE
            )
        )
        parts.append(mark_safe("</svg>"))
        return mark_safe("".join(parts))

    def _opening(self) -> SafeString:
        return format_html(
            '<svg class="chart" viewBox="0 0 {} {}" width="100%" role="img" aria-labelledby="{}-title {}-desc"'
            ' xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
            _WIDTH,
            _HEIGHT,
            self.id,
            self.id,
            self.id,
            self.title,
            self.id,
            self.summary,
        )

    def _grid(self, top: Decimal) -> list[SafeString]:
        lines = []
        for step in range(_GRID_LINES + 1):
            y = _BASE - _PLOT_HEIGHT * step / _GRID_LINES
            lines.append(
                format_html(
                    '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                    '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                    _LEFT,
                    _WIDTH - _RIGHT,
                    _f(y),
                    _f(y),
                    _LEFT - 4,
                    _f(y + 4),
                    self.figure(top * step / _GRID_LINES),
                )
            )
        return lines

    def _bar(self, bar: Bar, *, x: float, slot: float, top: Decimal) -> list[SafeString]:
        """Draw one bar, a segment per series stacked from the baseline, with its label under it."""
        segments, y = [], Decimal(_BASE)
        for series, value in zip(self.series, bar.values, strict=True):
            height = Decimal(_PLOT_HEIGHT) * Decimal(value) / top if top else Decimal(0)
            y -= height
            what = f"{self.figure(value)} {self.unit}"
            segments.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}" data-value="{}">'
                    "<title>{}: {}</title></rect>",
                    series.css,
                    _f(x),
                    _f(y),
                    _f(slot * 0.8),
                    _f(height),
                    value,
                    bar.name,
                    f"{series.name} {what}" if len(self.series) > 1 else what,
                )
            )
        drawn = [
            format_html('<g class="bar"><title>{}</title>{}</g>', self._tooltip(bar), mark_safe("".join(segments)))
        ]
        if bar.label:
            drawn.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _f(x + slot * 0.4),
                    _BASE + 16,
                    bar.label,
                )
            )
        return drawn

    def _tooltip(self, bar: Bar) -> str:
        if len(self.series) == 1:
            return f"{bar.name}: {self.figure(bar.total)} {self.unit}"
        each = ", ".join(
            f"{series.name} {self.figure(value)}" for series, value in zip(self.series, bar.values, strict=True)
        )
        return f"{bar.name}: {each}; {self.figure(bar.total)} {self.unit} in all"

    def _limit_line(self, top: Decimal) -> SafeString:
        y = _BASE - _PLOT_HEIGHT * Decimal(self.limit) / top
        return format_html(
            '<line class="limit" x1="{}" x2="{}" y1="{}" y2="{}"><title>{} {}</title></line>'
            '<text class="limit-label" x="{}" y="{}" text-anchor="end">{} {}</text>',
            _LEFT,
            _WIDTH - _RIGHT,
            _f(y),
            _f(y),
            self.limit_label,
            f"{self.limit:,}",
            _WIDTH - _RIGHT - 2,
            _f(y - 4),
            self.limit_label,
            f"{self.limit:,}",
        )


def nice_ceiling(value: Decimal) -> Decimal:
    """Round up to 1, 2, 2.5 or 5 times a power of ten (0: 1), a grid step that reads well."""
    if value <= 0:
        return Decimal(1)
    power = Decimal(10) ** math.floor(math.log10(value))
    for step in (1, 2, Decimal("2.5"), 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _f(number) -> str:
    """Write a coordinate with one decimal: enough for a drawing 640 units wide."""
    return f"{float(number):.1f}"


# --- the dashboard's charts ------------------------------------------------------------------------

SPEND_SERIES = (Series("servers", "s-servers"), Series("IPv4s", "s-ipv4s"), Series("static IPs", "s-static"))


def spend_by_day(*, prices: hetzner.Prices, now: datetime | None = None, days: int = DAYS) -> Chart:
    """Chart the euros billed each day (UTC) of the last `days`, today so far, as the budgets count them."""
    now = now or clock.now()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days - 1)
    ends = [min(first + timedelta(days=index + 1), now) for index in range(days)]
    sums = [[Decimal(0)] * 3 for _ in range(days)]
    servers, ipv4s, static_ips = costing.billed_since(since=first, prices=prices)
    for series, items in enumerate((servers, ipv4s, static_ips)):
        for item in items:
            # Only the days it existed in: a month of rows times thirty days would be slow to add up.
            start_day = max(0, (item.start - first).days)
            end_day = days - 1 if item.end is None else min(days - 1, (item.end - first).days)
            for day in range(start_day, end_day + 1):
                sums[day][series] += item.cost_in(first + timedelta(days=day), ends[day])
    bars = tuple(
        Bar(
            label=f"{first + timedelta(days=index):%m-%d}" if (days - 1 - index) % 5 == 0 else "",
            name=f"{first + timedelta(days=index):%Y-%m-%d}" + (" (so far)" if index == days - 1 else ""),
            values=tuple(sums[index]),
        )
        for index in range(days)
    )
    return Chart(
        id="chart-spend",
        title=f"{prices.currency} per day, last {days} days (UTC)",
        unit=prices.currency,
        series=SPEND_SERIES,
        bars=bars,
        decimals=4,  # a server costs a cent or two an hour
    )


def _hours(now: datetime, hours: int) -> list[datetime]:
    """Return the starts of the last `hours` clock hours (UTC), the current one last."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - HOUR * (hours - 1 - index) for index in range(hours)]


def _hour_bar(start: datetime, index: int, hours: int, value: int) -> Bar:
    return Bar(
        label=f"{start:%H}h" if (hours - 1 - index) % 3 == 0 else "",
        name=f"{start:%Y-%m-%d %H:00}–{start + HOUR:%H:00}",
        values=(value,),
    )


def instances_by_hour(*, now: datetime | None = None, hours: int = HOURS) -> Chart:
    """Chart how many instances existed at Hetzner at some time in each of the last `hours` hours.

    One aggregate query: an instance counts in an hour when it was created before the hour's end and
    its delete was not taken before its start; a create Hetzner refused never existed.
    """
    now = now or clock.now()
    starts = _hours(now, hours)
    counts = (
        Instance.objects.exclude(status=Instance.Status.TERMINATED, hetzner_id__isnull=True)
        .filter(created_at__lt=now)
        # As the costs count it: a server is gone once its delete was taken (the reconciler sees it later).
        .annotate(ended_at=Coalesce("delete_requested_at", "terminated_at"))
        .aggregate(
            **{
                f"h{index}": Count(
                    "pk",
                    filter=Q(created_at__lt=start + HOUR)
                    & (~Q(status=Instance.Status.TERMINATED) | Q(ended_at__gt=start)),
                )
                for index, start in enumerate(starts)
            }
        )
    )
    return Chart(
        id="chart-instances",
        title=f"Instances alive in each hour, last {hours} hours (UTC)",
        unit="instances",
        period="hour",
        additive=False,
        series=(Series("instances", "s-instances"),),
        bars=tuple(_hour_bar(start, index, hours, counts[f"h{index}"]) for index, start in enumerate(starts)),
    )


def hetzner_requests_by_hour(*, now: datetime | None = None, hours: int = HOURS) -> Chart:
    """Chart the requests Hetzner answered in each of the last `hours` hours, against its hourly limit."""
    now = now or clock.now()
    starts = _hours(now, hours)
    counted = dict(HetznerRequestHour.objects.filter(hour__gte=starts[0]).values_list("hour", "requests"))
    shared = budget.current()
    return Chart(
        id="chart-requests",
        title=f"Hetzner API requests per hour, last {hours} hours (UTC)",
        unit="requests",
        period="hour",
        series=(Series("requests", "s-requests"),),
        bars=tuple(_hour_bar(start, index, hours, counted.get(start, 0)) for index, start in enumerate(starts)),
        limit=shared.limit if shared is not None else _DEFAULT_RATE_LIMIT,
        limit_label="Hetzner's budget per hour",
    )


def count_hetzner_request(response: requests.Response) -> None:
    """Count one answer of Hetzner's in its hour's row (a gateway response hook); never fail the call.

    A savepoint around the writes: a failed one must not break the caller's transaction.
    """
    hour = clock.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        with transaction.atomic():
            if HetznerRequestHour.objects.filter(hour=hour).update(requests=F("requests") + 1):
                return
        try:
            with transaction.atomic():
                HetznerRequestHour.objects.create(hour=hour, requests=1)
        except IntegrityError:  # another process counted this hour's first request meanwhile
            with transaction.atomic():
                HetznerRequestHour.objects.filter(hour=hour).update(requests=F("requests") + 1)
            return
        # A new hour: the rows past the chart's week go (once an hour, by whoever counted first).
        with transaction.atomic():
            HetznerRequestHour.objects.filter(hour__lt=hour - _REQUESTS_KEPT).delete()
    except DatabaseError as exc:
        logger.warning("Could not count a Hetzner request: %s", exc)


# --- the runs page ---------------------------------------------------------------------------------

_RUN_BAR_WIDTH, _RUN_BAR_HEIGHT = 200, 14


def run_bars(runs: list, *, show_static_ips: bool) -> list[tuple[object, SafeString]]:
    """Pair each run with a bar of its cost, as long as the dearest run's is the whole width.

    Static IPs' euros (and so the totals) only to whom may see them: the dashboard's rule.
    """
    series = SPEND_SERIES if show_static_ips else SPEND_SERIES[:2]
    values = [(run.servers_eur, run.ipv4s_eur, run.static_ips_eur)[: len(series)] for run in runs]
    top = max((sum(parts) for parts in values), default=Decimal(0))
    return [(run, _run_bar(parts, series, top)) for run, parts in zip(runs, values, strict=True)]


def _run_bar(parts: tuple[Decimal, ...], series: tuple[Series, ...], top: Decimal) -> SafeString:
    total = sum(parts)
    label = f"{total:.4f} EUR: " + ", ".join(f"{s.name} {v:.4f}" for s, v in zip(series, parts, strict=True))
    x, rects = Decimal(0), []
    for s, value in zip(series, parts, strict=True):
        width = Decimal(_RUN_BAR_WIDTH) * value / top if top else Decimal(0)
        rects.append((s.css, _f(x), _f(width), value, f"{s.name} {value:.4f} EUR"))
        x += width
    return format_html(
        '<svg class="run-bar" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}"'
        ' xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}</svg>',
        _RUN_BAR_WIDTH,
        _RUN_BAR_HEIGHT,
        _RUN_BAR_WIDTH,
        _RUN_BAR_HEIGHT,
        label,
        label,
        format_html_join(
            "",
            '<rect class="{}" x="{}" y="0" width="{}" height="' + str(_RUN_BAR_HEIGHT) + '" data-value="{}">'
            "<title>{}</title></rect>",
            ((css, x, width, value, name) for css, x, width, value, name in rects),
        ),
    )
