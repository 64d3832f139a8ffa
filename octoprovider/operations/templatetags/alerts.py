"""`{% open_alerts as alerts %}`: the alerts that hold now, for the dashboard's panel."""

from django import template

from octoprovider.operations.alerts import open_alerts as open_alerts_now

register = template.Library()


@register.simple_tag(takes_context=True)
def open_alerts(context) -> dict:
    """Return whether the user may see the alerts (they name instances and money) and, if so, the open ones."""
    show = context["request"].user.has_perm("operations.view_alert")
    return {"show": show, "open": open_alerts_now() if show else []}
