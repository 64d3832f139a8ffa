"""`{% dashboard as figures %}`: the operators' dashboard figures, for the admin's index page."""

from django import template

from octoprovider.operations import dashboard as figures_module

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard(context) -> dict:
    """Return the dashboard's figures that the signed-in user may see (a handful of aggregate queries)."""
    return figures_module.figures(user=context["request"].user)
