"""API clients (hospital systems), their scoped tokens, and the idempotency keys of their writes.

An ``ApiClient`` is an integration service account: one Django user whose ``StaffProfile`` role is
``integration`` (never shared with a person), plus the scopes its tokens may carry. Tokens are shown once
and stored as a SHA-256 digest (they are 256-bit random values, so a fast digest is enough; nothing to
brute-force offline). An ``IdempotencyRecord`` keeps the answer to a POST for a while so that a retried
request gets the same answer instead of creating a second record; the stored answer may hold patient data,
so it is encrypted like the record itself.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dpi.api.scopes import validate_scopes
from dpi.fields import EncryptedTextField


class ApiClient(models.Model):
    """A system allowed to call /api/ and /fhir/ (laboratory, ADT feed, imaging, regional platform...)."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.CharField(_("description"), max_length=300, blank=True, default="")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="api_client",
        help_text=_("service account (role integration) the gate sees"),
    )
    scopes = models.JSONField(_("scopes"), default=list, help_text=_("the most its tokens may carry"))
    may_act_on_behalf = models.BooleanField(
        _("may act on behalf of a user"),
        default=False,
        help_text=_("accept X-On-Behalf-Of: the named user's rights then apply (the client authenticated them)"),
    )
    rate_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text=_("empty: DPI_API_RATE_PER_MINUTE"))
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.scopes = validate_scopes(self.scopes)
        from access.models import StaffProfile
        from access.policy import Role

        if self.user_id and not StaffProfile.objects.filter(user_id=self.user_id, role=Role.INTEGRATION).exists():
            raise ValidationError({"user": [_("An API client's account must have the integration role.")]})


class ApiToken(models.Model):
    """A bearer credential ``dpi_<prefix>_<secret>``: the prefix finds the row, the digest proves it."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list, blank=True, help_text=_("subset of the client's scopes; empty: all"))
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.client.name} {self.prefix}"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def effective_scopes(self) -> frozenset[str]:
        """Its own scopes, within the client's (narrowing a client narrows its tokens)."""
        client_scopes = set(self.client.scopes)
        return frozenset(set(self.scopes) & client_scopes if self.scopes else client_scopes)


class IdempotencyRecord(models.Model):
    """The answer to one POST carrying ``Idempotency-Key``, replayed to retries of the same request."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        help_text=_("the authenticated account (the client's service account, or the user)"),
    )
    key = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(default=0)
    response_body = EncryptedTextField(blank=True, default="")
    response_headers = models.JSONField(default=dict, blank=True)
    # What the answer shows, so that a replay is itself checked and recorded by the gate.
    patient_id = models.BigIntegerField(null=True, blank=True)
    category = models.CharField(max_length=20, blank=True, default="")
    resource_type = models.CharField(max_length=40, blank=True, default="")
    resource_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_unique")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.status_code or 'pending'})"
