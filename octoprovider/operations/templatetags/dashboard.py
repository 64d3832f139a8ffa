"""`{% dashboard as figures %}`: the operators' dashboard figures, for the admin's index page.

And the dashboard's wording: `|ago` ("just now", "3 minutes ago"), `|sentences` (messages joined
once, with one full stop at the end).
"""

from datetime import datetime, timedelta

from django import template
from django.utils.timesince import timesince

from octoprovider.core import clock
from octoprovider.operations import costing
from octoprovider.operations import dashboard as figures_module

register = template.Library()

_JUST_NOW = timedelta(minutes=1)


@register.simple_tag(takes_context=True)
def parked_servers(context):
    """Return the parked servers and today's reuse figures, or None when the user may not see instances."""
    if not context["request"].user.has_perm("instances.view_instance"):
        return None
    from octoprovider.operations.reuse_figures import reuse_figures

    return reuse_figures(since=costing.periods(clock.now())[0])


@register.simple_tag(takes_context=True)
def dashboard(context) -> dict:
    """Return the dashboard's figures that the signed-in user may see (a handful of aggregate queries)."""
    return figures_module.figures(user=context["request"].user)


@register.filter
def ago(when: datetime | None) -> str:
    """Say how long ago `when` was by the service's clock: "just now" under a minute, not "0 minutes ago"."""
    if when is None:
        return "never"
    now = clock.now()
    if now - when < _JUST_NOW:
        return "just now"
    return f"{timesince(when, now)} ago"


@register.filter
def sentences(messages: list[str]) -> str:
    """Join messages with "; " and end them with one full stop (messages that end with one keep theirs)."""
    text = "; ".join(message.rstrip() for message in messages)
    return text if text.endswith((".", "…")) else text + "."
