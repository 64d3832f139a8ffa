"""`{% dashboard_charts as charts %}` and `{% run_bars runs show_static_ips as rows %}`: the console's SVG charts."""

from django import template

from octoprovider import hetzner
from octoprovider.core.exceptions import HetznerError
from octoprovider.operations import charts, dashboard

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard_charts(context) -> dict:
    """Return the dashboard's charts that the signed-in user may see (each one or two queries)."""
    show = dashboard.visible_to(context["request"].user)
    found: dict = {"list": []}
    if show["spend"]:
        try:
            found["list"].append(charts.spend_by_day(prices=hetzner.hourly_prices()))
        except HetznerError as exc:
            found["spend_error"] = exc.message
    if show["instances"]:
        found["list"].append(charts.instances_by_hour())
    if show["reconciler"]:
        found["list"].append(charts.hetzner_requests_by_hour())
    return found


@register.simple_tag
def run_bars(runs, show_static_ips: bool) -> list:
    """Pair each run with the bar of its cost."""
    return charts.run_bars(runs, show_static_ips=show_static_ips)
