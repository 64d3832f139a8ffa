"""API tokens in the console: create (the secret shown once), for OctoPerf or read-only, see their use, revoke."""

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from octoprovider.contract import tokens
from octoprovider.contract.models import ApiToken
from octoprovider.core.admin import AuditedModelAdmin, confirmation_page, run_per_row


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    """Create tokens (the secret is shown once, on the page that follows), see their use, revoke them."""

    list_display = ["name", "scope", "prefix", "state", "created_at", "last_used_at", "revoked_at"]
    list_filter = [RevokedFilter, "scope", "created_at"]
    search_fields = ["name", "=prefix"]
    actions = ["revoke"]
    radio_fields = {"scope": admin.VERTICAL}

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return ["name", "scope"]
        return ["name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return []
        return ["name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]

    def audit_target(self, obj: ApiToken) -> str:
        # Its name only: the prefix is the start of the secret.
        return f"API token {obj.name}"

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # Revoked tokens stay listed: the audit log names them.
        return False

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return "revoked" if token.is_revoked else "active"

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if change:
            return  # nothing about a token is editable
        token, secret = tokens.api_token_create(name=obj.name, scope=obj.scope)
        obj.pk, obj.prefix, obj.secret_hash, obj.created_at = (
            token.pk,
            token.prefix,
            token.secret_hash,
            token.created_at,
        )
        obj._state.adding = False
        obj._secret = secret  # for response_add only: never saved

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None):
        """Show the new token's secret, this once, instead of redirecting to the list."""
        base_url = request.build_absolute_uri("/octoperf/")
        allow_list_url = request.build_absolute_uri(reverse("allow-list"))
        # Admin views are never_cache: neither the browser nor a proxy keeps this page.
        return TemplateResponse(
            request,
            "admin/octoprovider/apitoken/created.html",
            {
                **self.admin_site.each_context(request),
                "title": f"API token {obj.name} created",
                "subtitle": None,
                "opts": self.opts,
                "token": obj,
                "secret": obj._secret,
                "base_url": base_url,
                "allow_list_url": allow_list_url,
                "read_only": obj.scope == ApiToken.Scope.READ,
            },
        )

    @admin.action(description="Revoke selected API tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self,
            request,
            queryset,
            action="revoke",
            title="Revoke API tokens",
            consequence="OctoPerf's calls with these tokens are refused (401) from now on; a provider configured "
            "with one stops working until its base URL gets another token. This cannot be undone.",
        )
        if page is not None:
            return page
        run_per_row(
            self, request, queryset, done="revoked", call=lambda token: tokens.api_token_revoke(token_id=token.pk)
        )
        return None
