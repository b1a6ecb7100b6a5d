"""Who is calling: an API client's bearer token (optionally on behalf of a user), or a signed-in person.

- ``ApiTokenAuthentication``: ``Authorization: Bearer dpi_<prefix>_<secret>``. The request's user is the
  client's service account, or, with ``X-On-Behalf-Of: <username>`` on a client allowed to use it, that
  user: the gate then applies the user's rights, and the token's scopes still narrow what may be asked.
- ``VerifiedSessionAuthentication``: a browser session, accepted only once the second factor was verified
  (django-otp), whatever the role, since the API reaches patient data in bulk.
Refusals are access events (channel ``api``), so the detection of abnormal access sees token guessing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_noop
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from access import gate
from access.authn.credentials import current_generation, generation_key
from audit.context import asked_resource
from audit.services import event_record
from dpi import redis_client
from dpi.api.models import ApiClient, ApiToken
from dpi.api.services import token_matches, token_split
from dpi.middleware import in_callers_language

ON_BEHALF_HEADER = "X-On-Behalf-Of"
_ON_BEHALF_META = "HTTP_X_ON_BEHALF_OF"  # read from META: no copy of every header per call (issue #18)
_LAST_USED_GRANULARITY = timedelta(minutes=1)
RATE_WINDOW_SECONDS = 60  # the rate limit's fixed window (dpi.api.throttling)
RATE_KEY_SECONDS = RATE_WINDOW_SECONDS + 5


@dataclass(frozen=True)
class ApiPrincipal:
    """``request.auth`` for token calls: the client, its token, and who the gate sees."""

    client: ApiClient
    token: ApiToken
    service_user: User
    on_behalf_of: User | None
    scopes: frozenset[str]
    # (count, window) of this request in the client's rate window, when counted with the credential check.
    rate: tuple[int, int] | None = None

    def details(self) -> dict[str, Any]:
        """Recorded in every access event of the request (client and, if any, the represented user)."""
        out: dict[str, Any] = {"api_client": self.client.name, "service_account": self.service_user.username}
        if self.on_behalf_of is not None:
            out["on_behalf_of"] = self.on_behalf_of.username
        return out


@dataclass
class VerifiedToken:
    """A token whose secret was checked against the database, with what it stands for."""

    token: ApiToken  # with client and client.user
    profile: Any  # the service account's StaffProfile (units prefetched), or None
    scopes: frozenset[str]
    used_at: datetime | None
    generation: int = -1
    loaded_at: float = 0.0
    # The service account is not a plain integration account (another role, a superuser or admin-site flag, a
    # privilege group or a model permission): a token is nobody's second factor, so it authenticates no such
    # account (access.gate.holds_privilege).
    unfit: bool = False


class VerifiedTokens:
    """Verified tokens kept in this process, so that a call costs no token, client, account or profile query.

    An entry is used only while the credentials generation in Redis is the one it was read under: any change of
    the token, its client, the service account or its profile moves it (access.authn.credentials), and the
    check rides on the round trip the rate limit makes to Redis anyway. Entries also expire after
    ``CACHE_SECONDS`` (a change made outside the application, by SQL, applies within that time). Keyed by a
    digest of the whole bearer string: a hit means the same secret was already checked. Without Redis nothing is
    cached. Expiry dates are checked on every request (``is_usable``).
    """

    CACHE_SECONDS = 60.0
    MAX_ENTRIES = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], VerifiedToken] = {}

    @staticmethod
    def _key(raw: str) -> tuple[str, str]:
        return connection.settings_dict["NAME"], hashlib.sha256(raw.encode()).hexdigest()

    def lookup(self, raw: str) -> tuple[VerifiedToken | None, tuple[int, int] | None | bool]:
        """(the entry if still valid, the (count, window) made with the check); (None, None) on a miss, (None,
        False) when Redis could not be reached (the caller then does not try it again)."""
        key = self._key(raw)
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry.loaded_at > self.CACHE_SECONDS:
            return None, None
        window = rate_window()
        try:
            count, generation = redis_client.count_and_read(
                rate_key(f"client:{entry.token.client.uid}", window), RATE_KEY_SECONDS, generation_key()
            )
        except (RedisError, OSError):
            return None, False  # the throttle counts in this process, and the database is read again
        if generation != entry.generation:
            with self._lock:
                self._entries.pop(key, None)
            return None, (count, window)
        return entry, (count, window)

    def store(self, raw: str, entry: VerifiedToken, generation: int) -> None:
        entry.generation, entry.loaded_at = generation, time.monotonic()
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[self._key(raw)] = entry

    def holds(self, raw: str) -> bool:
        """Whether this process keeps a verified entry for this bearer string (tests, diagnostics)."""
        return self._key(raw) in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_tokens = VerifiedTokens()


def rate_window(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // RATE_WINDOW_SECONDS)


def rate_key(ident: str, window: int) -> str:
    return f"api-rate:{ident}:{window}"


def _refuse(*, request: Any, actor: Any, basis: str, reason: str, details: dict[str, Any] | None = None) -> None:
    """A refused credential, recorded with what the request asked for (the patient's file it sought)."""
    asked = asked_resource(request)
    event_record(
        actor=actor,
        actor_role=str(gate.role_of(actor) or "") if actor else "",
        actor_unit=gate.unit_of(actor) if actor else "",
        action="login_failure",
        outcome="denied",
        basis=basis,
        reason=reason,
        patient_id=asked["patient_id"],
        resource_type=asked["resource_type"],
        resource_id=asked["resource_id"],
        details={**(details or {}), "path": getattr(request, "path", "")[:200]},
    )


def _authorization(request) -> bytes:
    """DRF's ``get_authorization_header``, read from the Django request's META without going through the DRF
    request's attribute proxy (issue #18)."""
    raw = getattr(request, "_request", request).META.get("HTTP_AUTHORIZATION", b"")
    return raw.encode("iso-8859-1") if isinstance(raw, str) else raw


def _own_copy(user: User) -> User:
    """What ``copy.copy`` of a model instance gives (its state copied, its related-object cache too), without
    the copy module's pickling protocol: the cached service account is copied on every call (issue #18)."""
    clone = User.__new__(User)
    state = user.__getstate__()
    for attr, value in state.pop("_memoryview_attrs", ()):
        state[attr] = memoryview(value)
    clone.__dict__.update(state)
    return clone


class ApiTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        header = _authorization(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(in_callers_language(request, gettext_noop("invalid token"))) from exc
        verified, rate = verified_tokens.lookup(raw)
        if verified is None:
            # Redis unreachable a moment ago: do not wait for it a second time (its timeout) to read the counter.
            verified = self._verify(raw, request, cacheable=rate is not False)
        token, service_user = verified.token, _own_copy(verified.token.client.user)
        client = token.client
        if not token.is_usable or not client.is_active or not service_user.is_active:
            refusal = ("deny:token_inactive", "token revoked or expired, or client off")
        elif verified.unfit:
            refusal = ("deny:token_account", "a token authenticates only an integration account without privileges")
        else:
            refusal = None
        if refusal is not None:  # the caller is told the same in both cases; the trace says which
            _refuse(request=request, actor=service_user, basis=refusal[0], reason=refusal[1],
                    details={"api_client": client.name, "prefix": token.prefix})
            raise exceptions.AuthenticationFailed(
                in_callers_language(request, gettext_noop("token revoked or expired")))
        now = timezone.now()
        if verified.used_at is None or now - verified.used_at > _LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            verified.used_at = now
        # The service account's profile (role, units, contract dates) was read with the token: no query.
        service_user._dpi_profile = verified.profile
        represented = self._on_behalf_of(request, client, service_user)
        gate.mark_token_principal(represented or service_user)
        principal = ApiPrincipal(
            client=client,
            token=token,
            service_user=service_user,
            on_behalf_of=represented,
            scopes=verified.scopes,
            rate=rate if isinstance(rate, tuple) else None,
        )
        return (represented or service_user, principal)

    @staticmethod
    def _verify(raw: str, request: Any, *, cacheable: bool = True) -> VerifiedToken:
        """Read the token from the database and check its secret (a cache miss)."""
        generation = None  # Redis unreachable: nothing can be cached safely
        if cacheable:
            try:
                generation = current_generation()
            except (RedisError, OSError):
                generation = None
        parts = token_split(raw)
        token = None
        if parts is not None:
            token = ApiToken.objects.select_related("client__user").filter(prefix=parts[0][:16]).first()
        if token is None or parts is None or not token_matches(token, parts[1]):
            _refuse(
                request=request,
                actor=None,
                basis="deny:bad_token",
                reason="unknown or wrong API token",
                details={"prefix": parts[0][:16] if parts else ""},
            )
            raise exceptions.AuthenticationFailed(in_callers_language(request, gettext_noop("invalid token")))
        account = token.client.user
        verified = VerifiedToken(
            token=token,
            profile=gate.profile_of(account),
            scopes=token.effective_scopes(),
            used_at=token.last_used_at,
            unfit=not gate.is_token_only(account) or gate.holds_privilege(account),
        )
        if generation is not None:
            verified_tokens.store(raw, verified, generation)
        return verified

    @staticmethod
    def _on_behalf_of(request, client: ApiClient, service_user: User) -> User | None:
        username = request.META.get(_ON_BEHALF_META, "").strip()
        if not username:
            return None
        # A username is printable and at most 150 characters: anything else names no account (a NUL byte would
        # fail the look-up and the event's JSON), and is recorded escaped.
        named = username if username.isprintable() and len(username) <= 150 else None
        base = {
            "api_client": client.name,
            "service_account": service_user.username,
            "on_behalf_of": named or username.encode("unicode_escape").decode("ascii")[:150],
        }
        if not client.may_act_on_behalf:
            _refuse(
                request=request,
                actor=service_user,
                basis="deny:on_behalf_of",
                reason="client may not act on behalf of users",
                details=base,
            )
            raise exceptions.PermissionDenied(
                in_callers_language(request, gettext_noop("this client may not act on behalf of a user")))
        user = User.objects.filter(username=named, is_active=True).first() if named else None
        if (user is None or gate.profile_of(user) is None or hasattr(user, "api_client")
                or not gate.may_be_represented(user)):
            # Same answer for an unknown account and one that cannot be represented (no care role, another
            # client's service account, or a privileged principal: they act with their own second factor only).
            _refuse(
                request=request,
                actor=service_user,
                basis="deny:on_behalf_of",
                reason="no such active staff account",
                details=base,
            )
            raise exceptions.PermissionDenied(
                in_callers_language(request, gettext_noop("cannot act on behalf of this account")))
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
            _refuse(request=request, actor=user, basis="deny:token_only",
                    reason="integration accounts act by API token only")
            raise exceptions.AuthenticationFailed(
                in_callers_language(request, gettext_noop("integration accounts act by API token only")))
        verified = getattr(user, "is_verified", None)
        if not callable(verified) or not verified():
            _refuse(request=request, actor=user, basis="deny:second_factor",
                    reason="API session without a verified second factor")
            raise exceptions.PermissionDenied(
                in_callers_language(request, gettext_noop("a verified second factor is required")))
        if request.headers.get(ON_BEHALF_HEADER):
            raise exceptions.PermissionDenied(
                in_callers_language(request, gettext_noop("%(header)s is for API clients only"))
                % {"header": ON_BEHALF_HEADER})
        return result


def principal_of(request) -> ApiPrincipal | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiPrincipal) else None


def api_details(request) -> dict[str, Any]:
    principal = principal_of(request)
    return principal.details() if principal else {}
