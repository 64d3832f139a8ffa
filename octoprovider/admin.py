"""The console's frame, and the admin pages of the layers that are not Django apps of their own."""

from django.contrib import admin

from octoprovider.contract import admin as contract_admin  # noqa: F401  (registers API tokens)
from octoprovider.hetzner import admin as hetzner_admin  # noqa: F401  (registers the catalogue overrides)

admin.site.site_header = "octoprovider: operators' console"
admin.site.site_title = "octoprovider"
admin.site.index_title = "Dashboard"
# There is no public site to view: the service's only other pages are OctoPerf's API and the probes.
admin.site.site_url = None
# Django's navigation sidebar repeats the dashboard's links and takes a fifth of a laptop's screen from
# the lists, whose columns then end off-screen.
admin.site.enable_nav_sidebar = False
