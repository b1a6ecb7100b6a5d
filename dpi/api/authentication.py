"""Who is calling: an API client's bearer token (optionally on behalf of a user), or a signed-in person.

- ``ApiTokenAuthentication``: ``Authorization: Bearer dpi_<prefix>_<secret>``. The request's user is the
  client's service account, or, with ``X-On-Behalf-Of: <username>`` on a client allowed to use it, that
  user: the gate then applies the user's rights, and the token's scopes still narrow what may be asked.
- ``VerifiedSessionAuthentication``: a browser session, accepted only once the second factor was verified
  (django-otp), whatever the role, since the API reaches patient data in bulk.
Refusals are access events (channel ``api``), so the detection of abnormal access sees token guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header

from access import gate
from audit.services import event_record
from dpi.api.models import ApiClient, ApiToken
from dpi.api.services import token_matches, token_split

ON_BEHALF_HEADER = "X-On-Behalf-Of"
_LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiPrincipal:
    """``request.auth`` for token calls: the client, its token, and who the gate sees."""

    client: ApiClient
    token: ApiToken
    service_user: User
    on_behalf_of: User | None
    scopes: frozenset[str]

    def details(self) -> dict[str, Any]:
        """Recorded in every access event of the request (client and, if any, the represented user)."""
        out: dict[str, Any] = {"api_client": self.client.name, "service_account": self.service_user.username}
        if self.on_behalf_of is not None:
            out["on_behalf_of"] = self.on_behalf_of.username
        return out


def _refuse(*, actor: Any, basis: str, reason: str, details: dict[str, Any] | None = None) -> None:
    event_record(
        actor=actor,
        actor_role=str(gate.role_of(actor) or "") if actor else "",
        actor_unit=gate.unit_of(actor) if actor else "",
        action="login_failure",
        outcome="denied",
        basis=basis,
        reason=reason,
        details=details or {},
    )


class ApiTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("invalid token") from exc
        parts = token_split(raw)
        token = None
        if parts is not None:
            token = ApiToken.objects.select_related("client__user").filter(prefix=parts[0][:16]).first()
        if token is None or parts is None or not token_matches(token, parts[1]):
            _refuse(
                actor=None,
                basis="deny:bad_token",
                reason="unknown or wrong API token",
                details={"prefix": parts[0][:16] if parts else ""},
            )
            raise exceptions.AuthenticationFailed("invalid token")
        client, service_user = token.client, token.client.user
        if not token.is_usable or not client.is_active or not service_user.is_active:
            _refuse(
                actor=service_user,
                basis="deny:token_inactive",
                reason="token revoked or expired, or client off",
                details={"api_client": client.name, "prefix": token.prefix},
            )
            raise exceptions.AuthenticationFailed("token revoked or expired")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        represented = self._on_behalf_of(request, client, service_user)
        gate.mark_token_principal(represented or service_user)
        principal = ApiPrincipal(
            client=client,
            token=token,
            service_user=service_user,
            on_behalf_of=represented,
            scopes=token.effective_scopes(),
        )
        return (represented or service_user, principal)

    @staticmethod
    def _on_behalf_of(request, client: ApiClient, service_user: User) -> User | None:
        username = request.headers.get(ON_BEHALF_HEADER, "").strip()
        if not username:
            return None
        base = {
            "api_client": client.name,
            "service_account": service_user.username,
            "on_behalf_of": username[:150],
        }
        if not client.may_act_on_behalf:
            _refuse(
                actor=service_user,
                basis="deny:on_behalf_of",
                reason="client may not act on behalf of users",
                details=base,
            )
            raise exceptions.PermissionDenied("this client may not act on behalf of a user")
        user = User.objects.filter(username=username[:150], is_active=True).first()
        if (user is None or gate.profile_of(user) is None or hasattr(user, "api_client")
                or not gate.may_be_represented(user)):
            # Same answer for an unknown account and one that cannot be represented (no care role, another
            # client's service account, or a privileged principal: they act with their own second factor only).
            _refuse(
                actor=service_user,
                basis="deny:on_behalf_of",
                reason="no such active staff account",
                details=base,
            )
            raise exceptions.PermissionDenied("cannot act on behalf of this account")
        return user

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="dpi"'


class VerifiedSessionAuthentication(SessionAuthentication):
    """The browser session (with CSRF on writes), only after a verified second factor."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        if gate.is_token_only(user):
            _refuse(actor=user, basis="deny:token_only", reason="integration accounts act by API token only")
            raise exceptions.AuthenticationFailed("integration accounts act by API token only")
        verified = getattr(user, "is_verified", None)
        if not callable(verified) or not verified():
            _refuse(actor=user, basis="deny:second_factor", reason="API session without a verified second factor")
            raise exceptions.PermissionDenied("a verified second factor is required")
        if request.headers.get(ON_BEHALF_HEADER):
            raise exceptions.PermissionDenied(f"{ON_BEHALF_HEADER} is for API clients only")
        return result


def principal_of(request) -> ApiPrincipal | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiPrincipal) else None


def api_details(request) -> dict[str, Any]:
    principal = principal_of(request)
    return principal.details() if principal else {}
