from django.urls import re_path

from staticips import apis

urlpatterns = [
    re_path(r"^static-ips/allocate/?$", apis.StaticIPAllocateApi.as_view(), name="static-ip-allocate"),
    re_path(r"^static-ips/associate/?$", apis.StaticIPAssociateApi.as_view(), name="static-ip-associate"),
    re_path(r"^static-ips/dissociate/?$", apis.StaticIPDissociateApi.as_view(), name="static-ip-dissociate"),
    re_path(r"^static-ips/release/?$", apis.StaticIPReleaseApi.as_view(), name="static-ip-release"),
]
