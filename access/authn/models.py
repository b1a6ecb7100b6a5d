"""Authentication state: attempt limits, tracked sessions, disabled accounts, federated identities.

Nothing here holds a password or a one-time code. Attempted user names are stored as a keyed fingerprint
(``access.authn.throttle.fingerprint``): a user who types a password into the user-name field leaves no
trace of it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device


class LoginThrottle(models.Model):
    """Failed sign-in attempts for one account name or one source address (CNIL 2022-100: attempt limits).

    ``blocked_until`` is either the end of a growing delay (``locked`` false) or of a temporary lock
    (``locked`` true). Rows exist for unknown account names too, so that the answer is the same whether
    or not the account exists.
    """

    class Scope(models.TextChoices):
        ACCOUNT = "account", _("account")
        ADDRESS = "address", _("source address")

    scope = models.CharField(max_length=8, choices=Scope.choices)
    key = models.CharField(max_length=64, help_text=_("account-name fingerprint, or the IP address"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="login_throttles")
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    blocked_until = models.DateTimeField(null=True, blank=True)
    locked = models.BooleanField(default=False)
    locked_at = models.DateTimeField(null=True, blank=True)
    lock_count = models.PositiveIntegerField(default=0, help_text=_("locks since the last successful sign-in"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="login_throttle_unique")]
        indexes = [models.Index(fields=["locked", "blocked_until"], name="login_throttle_locked")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} ({self.failures})"


class SessionRecord(models.Model):
    """The sessions a user holds, so that they can be listed and ended together ("sign out everywhere")."""

    session_key = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="session_records")
    started_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["user", "started_at"], name="session_record_user")]

    def __str__(self) -> str:
        return f"{self.user_id} since {self.started_at:%Y-%m-%d %H:%M}"


class AccountDeactivation(models.Model):
    """An account disabled automatically (contract ended, unused) or by an administrator; shown to the DPO."""

    class Reason(models.TextChoices):
        CONTRACT_END = "contract_end", _("past the end date of the contract")
        INACTIVITY = "inactivity", _("no sign-in for too long")
        MANUAL = "manual", _("disabled by an administrator")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deactivations")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    deactivated_at = models.DateTimeField(default=timezone.now)
    last_login = models.DateTimeField(null=True, blank=True, help_text=_("last sign-in when disabled"))
    end_date = models.DateField(null=True, blank=True, help_text=_("contract end date when disabled"))
    reactivated_at = models.DateTimeField(null=True, blank=True)
    reactivated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")

    class Meta:
        indexes = [models.Index(fields=["user", "reactivated_at"], name="deactivation_user")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.reason} {self.deactivated_at:%Y-%m-%d}"


class OidcIdentity(models.Model):
    """Links an identity of an OpenID Connect provider (Pro Santé Connect) to one dpi account.

    Created by an administrator with the professional's RPPS number (``subject`` empty); the first sign-in
    through the provider binds the provider's stable ``sub`` to it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255, blank=True, default="", help_text=_("the provider's `sub` claim"))
    rpps = models.CharField(max_length=20, blank=True, default="", help_text=_("RPPS / ADELI identifier"))
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], condition=~models.Q(subject=""),
                                    name="oidc_identity_subject_unique"),
            models.UniqueConstraint(fields=["issuer", "rpps"], condition=~models.Q(rpps=""),
                                    name="oidc_identity_rpps_unique"),
            models.CheckConstraint(condition=~models.Q(subject="", rpps=""), name="oidc_identity_has_key"),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject or self.rpps} -> {self.user_id}"


class FederatedDevice(Device):
    """A django-otp device standing for a multi-factor sign-in done at a trusted identity provider.

    It verifies no token itself: the OpenID Connect callback marks the session verified with it when the
    provider says (``acr``) that it used several factors. ``name`` is the issuer.
    """

    class Meta(Device.Meta):
        verbose_name = "federated sign-in"

    def verify_token(self, token) -> bool:
        return False
