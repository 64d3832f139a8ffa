"""`{% dashboard as figures %}`: the operators' dashboard figures, for the admin's index page."""

from django import template

from octoprovider.operations import costing
from octoprovider.operations import dashboard as figures_module

register = template.Library()


@register.simple_tag(takes_context=True)
def parked_servers(context):
    """Return the parked servers and today's reuse figures, or None when the user may not see instances."""
    if not context["request"].user.has_perm("instances.view_instance"):
        return None
    from octoprovider.core import clock
    from octoprovider.operations.reuse_figures import reuse_figures

    return reuse_figures(since=costing.periods(clock.now())[0])


@register.simple_tag(takes_context=True)
def dashboard(context) -> dict:
    """Return the dashboard's figures that the signed-in user may see (a handful of aggregate queries)."""
    return figures_module.figures(user=context["request"].user)
