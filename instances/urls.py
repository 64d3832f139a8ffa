from django.urls import re_path

from instances import apis

# A trailing slash is optional: OctoPerf appends paths to whatever base URL the operator typed.
# The state first: OctoPerf polls it for every instance, every few seconds.
urlpatterns = [
    re_path(r"^instances/(?P<instance_id>[^/\x00]+)/state/?$", apis.InstanceStateApi.as_view(), name="instance-state"),
    re_path(r"^instances/?$", apis.InstancesApi.as_view(), name="instances"),
    re_path(r"^instances/(?P<instance_id>[^/\x00]+)/?$", apis.InstanceRebootApi.as_view(), name="instance"),
]
