"""Read-only questions about static IPs that the console and the reports share."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef

from octoprovider.core import clock
from staticips.models import Association, StaticIP


def static_ips_never_used():
    """Return the allocated static IPs OctoPerf never associated, allocated over UNCLAIMED_INSTANCE_GRACE ago.

    The likely first IP of an allocate OctoPerf retried because its answer came too late: OctoPerf
    never learned its ipId, so it never associates or releases it, and it is billed until an
    operator releases it. Not released automatically: an operator may allocate ahead of the tests
    (the console and `manage.py costs` show them; release them from the static IP list).
    """
    by_octoperf = Association.objects.filter(static_ip=OuterRef("pk"), internal=False)
    cutoff = clock.now() - timedelta(seconds=settings.UNCLAIMED_INSTANCE_GRACE)
    return StaticIP.objects.filter(status=StaticIP.Status.ALLOCATED, created_at__lt=cutoff).exclude(Exists(by_octoperf))
