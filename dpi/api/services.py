"""Writes of the API area: clients, tokens (each an audited permission change), idempotency housekeeping."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from access import gate
from access.policy import Role
from audit.services import event_record
from dpi.api.models import ApiClient, ApiToken, IdempotencyRecord
from dpi.api.scopes import validate_scopes

TOKEN_PREFIX = "dpi"  # noqa: S105 - the visible part of a token's format, not a secret


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_split(raw: str) -> tuple[str, str] | None:
    """``dpi_<prefix>_<secret>`` -> (prefix, secret), or None when malformed."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def token_matches(token: ApiToken, secret: str) -> bool:
    return hmac.compare_digest(token.digest, token_digest(secret))


def _record(actor: Any, what: str, details: dict[str, Any]) -> None:
    role = "system" if actor is None else str(gate.role_of(actor) or "")
    event_record(
        actor=actor,
        actor_role=role,
        actor_unit="" if actor is None else gate.unit_of(actor),
        action="permission_change",
        outcome="allowed",
        basis=what,
        resource_type="apiclient",
        details=details,
    )


@transaction.atomic
def api_client_create(
    *,
    actor: User | None,
    name: str,
    scopes: list[str],
    username: str | None = None,
    description: str = "",
    may_act_on_behalf: bool = False,
    rate_per_minute: int | None = None,
) -> ApiClient:
    """Create the service account (role integration, unusable password) and the client bound to it."""
    from access.models import StaffProfile

    username = username or f"api.{name}".lower().replace(" ", "-")[:150]
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": ["This account already exists."]})
    user = User(username=username, first_name=name[:150], last_name="(API client)")
    user.set_unusable_password()  # a service account never signs in to the web UI
    user.full_clean()
    user.save()
    StaffProfile.objects.create(user=user, role=Role.INTEGRATION.value)
    client = ApiClient(
        name=name,
        description=description,
        user=user,
        scopes=validate_scopes(scopes),
        may_act_on_behalf=may_act_on_behalf,
        rate_per_minute=rate_per_minute,
        created_by=actor,
    )
    client.full_clean()
    client.save(force_insert=True)
    _record(
        actor,
        "api_client_create",
        {
            "client": client.name,
            "service_account": username,
            "scopes": client.scopes,
            "may_act_on_behalf": may_act_on_behalf,
        },
    )
    return client


@transaction.atomic
def api_token_issue(
    *, actor: User | None, client: ApiClient, scopes: list[str] | None = None, days: int | None = None
) -> tuple[ApiToken, str]:
    """A new token for the client; returns (row, plaintext). The plaintext is never stored nor shown again."""
    wanted = validate_scopes(list(scopes or []))
    beyond = sorted(set(wanted) - set(client.scopes))
    if beyond:
        raise ValidationError({"scopes": [f"Not granted to this client: {s}" for s in beyond]})
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    token = ApiToken(
        client=client,
        prefix=prefix,
        digest=token_digest(secret),
        scopes=wanted,
        expires_at=timezone.now() + timedelta(days=days or settings.DPI_API_TOKEN_DAYS),
    )
    token.save(force_insert=True)
    _record(
        actor,
        "api_token_issue",
        {
            "client": client.name,
            "prefix": prefix,
            "scopes": wanted,
            "expires_at": token.expires_at.isoformat(),
        },
    )
    return token, f"{TOKEN_PREFIX}_{prefix}_{secret}"


@transaction.atomic
def api_token_revoke(*, actor: User | None, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _record(actor, "api_token_revoke", {"client": token.client.name, "prefix": token.prefix})
    return token


def idempotency_sweep(*, now=None) -> int:
    """Forget idempotency keys older than DPI_API_IDEMPOTENCY_HOURS (their encrypted answers with them)."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.DPI_API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
