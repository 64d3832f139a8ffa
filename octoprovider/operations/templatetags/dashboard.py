"""`{% dashboard as figures %}`: the operators' dashboard figures, for the admin's index page."""

from django import template

from octoprovider.operations import dashboard as figures_module

register = template.Library()


@register.simple_tag
def dashboard() -> dict:
    """Return the dashboard's figures (a handful of aggregate queries)."""
    return figures_module.figures()
