"""Administration of authentication state: linked federated identities, locks, disabled accounts, sessions."""

from __future__ import annotations

from django.contrib import admin, messages

from access.authn import services
from access.authn.models import AccountDeactivation, LoginThrottle, OidcIdentity, SessionRecord


@admin.register(OidcIdentity)
class OidcIdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "issuer", "rpps", "subject", "last_login_at")
    search_fields = ("user__username", "rpps", "subject")
    readonly_fields = ("last_login_at", "created_at")
    raw_id_fields = ("user",)


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LoginThrottle)
class LoginThrottleAdmin(ReadOnly):
    list_display = ("scope", "user", "key", "failures", "locked", "blocked_until", "lock_count")
    list_filter = ("scope", "locked")
    actions = ["unlock"]

    @admin.action(description="Unlock the selected accounts (traced)")
    def unlock(self, request, queryset):
        done = 0
        for row in queryset.filter(scope=LoginThrottle.Scope.ACCOUNT, user__isnull=False).select_related("user"):
            done += services.account_unlock(row.user, by=request.user)
        self.message_user(request, f"{done} account(s) unlocked.", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):  # the action needs it; the form stays read-only
        return request.user.has_perm("authn.change_loginthrottle")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(AccountDeactivation)
class AccountDeactivationAdmin(ReadOnly):
    list_display = ("user", "reason", "deactivated_at", "last_login", "end_date", "reactivated_at")
    list_filter = ("reason",)


@admin.register(SessionRecord)
class SessionRecordAdmin(ReadOnly):
    list_display = ("user", "started_at", "ip", "user_agent")
    exclude = ("session_key",)
