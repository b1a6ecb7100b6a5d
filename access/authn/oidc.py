"""Sign-in through an OpenID Connect provider: Pro Santé Connect, or any provider that works the same way.

Authorization-code flow with PKCE (S256), ``state`` and ``nonce`` kept in the session, client authentication
``client_secret_basic``, the ID token's signature checked against the provider's published keys and its
claims checked (OpenID Connect Core 3.1.3.7). The provider's ``sub`` (or, at the first sign-in, the RPPS
claim) is mapped to a dpi account by ``OidcIdentity``: no account is ever created from a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib import auth
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from access.authn import jose, throttle
from access.authn.models import FederatedDevice, OidcIdentity

SESSION_FLOW = "_dpi_oidc_flow"
FLOW_MAX_AGE = 600
HTTP_TIMEOUT = 10
CACHE_SECONDS = 3600
BACKEND = "access.authn.backends.ThrottledModelBackend"


class OidcError(Exception):
    """Sign-in refused; ``code`` goes to the audit trail, the user sees a generic message."""

    def __init__(self, code: str, user: Any = None, details: dict[str, Any] | None = None):
        super().__init__(code)
        self.code = code
        self.user = user
        self.details = details or {}


def enabled() -> bool:
    return bool(settings.DPI_OIDC_ENABLED)


def _http(url: str, *, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
          ) -> tuple[str, bytes]:
    if not url.startswith(("https://", "http://")):
        raise OidcError("bad_endpoint")
    if settings.PRODUCTION and not url.startswith("https://"):
        raise OidcError("insecure_endpoint")
    body = urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Accept": "application/json", **(headers or {})})  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 - scheme checked
            return response.headers.get("Content-Type", ""), response.read(1_000_000)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise OidcError("provider_unreachable", details={"url": url.split("?")[0]}) from exc


def _json(url: str, **kwargs: Any) -> dict[str, Any]:
    _type, body = _http(url, **kwargs)
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise OidcError("provider_bad_json") from exc
    if not isinstance(value, dict):
        raise OidcError("provider_bad_json")
    return value


def discovery() -> dict[str, Any]:
    issuer = settings.DPI_OIDC_ISSUER
    key = "authn:oidc:discovery:" + hashlib.sha256(issuer.encode()).hexdigest()[:32]
    meta = cache.get(key)
    if meta is None:
        meta = _json(issuer + "/.well-known/openid-configuration")
        if meta.get("issuer") != issuer:
            raise OidcError("discovery_issuer_mismatch")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(name), str):
                raise OidcError("discovery_incomplete")
        cache.set(key, meta, CACHE_SECONDS)
    return meta


def jwks(*, refresh: bool = False) -> dict[str, Any]:
    meta = discovery()
    key = "authn:oidc:jwks:" + hashlib.sha256(meta["jwks_uri"].encode()).hexdigest()[:32]
    keys = None if refresh else cache.get(key)
    if keys is None:
        keys = _json(meta["jwks_uri"])
        cache.set(key, keys, CACHE_SECONDS)
    return keys


def _verify(token: str) -> dict[str, Any]:
    try:
        return jose.verify_signature(token, jwks())
    except jose.TokenError:
        # The provider may have rolled its keys: fetch them once more.
        return jose.verify_signature(token, jwks(refresh=True))


def _pkce_challenge(verifier: str) -> str:
    return jose.b64url_encode(hashlib.sha256(verifier.encode()).digest())


def redirect_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("authn-oidc-callback"))


def authorization_url(request: HttpRequest, *, next_url: str = "") -> str:
    """Start a sign-in: remember state, nonce and PKCE verifier in the session; the provider's URL."""
    meta = discovery()
    flow = {"state": secrets.token_urlsafe(32), "nonce": secrets.token_urlsafe(32),
            "verifier": secrets.token_urlsafe(64), "next": next_url, "at": time.time()}
    request.session[SESSION_FLOW] = flow
    params = {
        "response_type": "code",
        "client_id": settings.DPI_OIDC_CLIENT_ID,
        "redirect_uri": redirect_uri(request),
        "scope": settings.DPI_OIDC_SCOPES,
        "state": flow["state"],
        "nonce": flow["nonce"],
        "code_challenge": _pkce_challenge(flow["verifier"]),
        "code_challenge_method": "S256",
    }
    if settings.DPI_OIDC_ACR_VALUES:
        params["acr_values"] = settings.DPI_OIDC_ACR_VALUES
    endpoint = meta["authorization_endpoint"]
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


def _token_exchange(request: HttpRequest, code: str, verifier: str) -> dict[str, Any]:
    meta = discovery()
    basic = base64.b64encode(f"{quote(settings.DPI_OIDC_CLIENT_ID, safe='')}:"
                             f"{quote(settings.DPI_OIDC_CLIENT_SECRET, safe='')}".encode()).decode()
    tokens = _json(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri(request),
        "code_verifier": verifier,
    }, headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
    if not isinstance(tokens.get("id_token"), str):
        raise OidcError("no_id_token")
    return tokens


def _userinfo(access_token: str, subject: str) -> dict[str, Any]:
    endpoint = discovery().get("userinfo_endpoint")
    if not endpoint or not access_token:
        return {}
    content_type, body = _http(endpoint, headers={"Authorization": f"Bearer {access_token}"})
    if "application/jwt" in content_type:
        try:
            info = _verify(body.decode().strip())
            jose.validate_claims({**info, "exp": info.get("exp", time.time()), "iat": info.get("iat", time.time())},
                                 issuer=settings.DPI_OIDC_ISSUER, audience=settings.DPI_OIDC_CLIENT_ID, nonce=None)
        except jose.TokenError as exc:
            raise OidcError("userinfo_invalid") from exc
    else:
        try:
            info = json.loads(body)
        except ValueError as exc:
            raise OidcError("userinfo_invalid") from exc
    if not isinstance(info, dict) or info.get("sub") != subject:
        raise OidcError("userinfo_subject_mismatch")
    return info


def _identity(issuer: str, subject: str, rpps: str) -> OidcIdentity | None:
    with transaction.atomic():
        identity = (OidcIdentity.objects.select_for_update().select_related("user")
                    .filter(issuer=issuer, subject=subject).first())
        if identity is None and rpps:
            identity = (OidcIdentity.objects.select_for_update().select_related("user")
                        .filter(issuer=issuer, subject="", rpps=rpps).first())
            if identity is not None:
                identity.subject = subject  # first sign-in: bind the provider's stable identifier
        if identity is not None:
            identity.last_login_at = timezone.now()
            identity.save()
        return identity


def complete(request: HttpRequest) -> tuple[Any, str]:
    """Finish the sign-in from the provider's redirect; returns (user, next URL) or raises OidcError."""
    from access.authn import services

    flow = request.session.pop(SESSION_FLOW, None)
    if not isinstance(flow, dict) or time.time() - float(flow.get("at", 0)) > FLOW_MAX_AGE:
        raise OidcError("no_pending_sign_in")
    if not hmac.compare_digest(str(request.GET.get("state", "")), str(flow["state"])):
        raise OidcError("state_mismatch")
    if request.GET.get("error"):
        raise OidcError("provider_error", details={"error": request.GET.get("error", "")[:100]})
    code = request.GET.get("code", "")
    if not code:
        raise OidcError("no_code")
    tokens = _token_exchange(request, code, flow["verifier"])
    issuer, client_id = settings.DPI_OIDC_ISSUER, settings.DPI_OIDC_CLIENT_ID
    try:
        claims = jose.validate_claims(_verify(tokens["id_token"]), issuer=issuer, audience=client_id,
                                      nonce=flow["nonce"])
    except jose.TokenError as exc:
        raise OidcError("id_token_invalid", details={"why": str(exc)}) from exc
    subject = claims["sub"]
    rpps_claim = settings.DPI_OIDC_RPPS_CLAIM
    rpps = claims.get(rpps_claim)
    if rpps is None and rpps_claim:
        rpps = _userinfo(tokens.get("access_token", ""), subject).get(rpps_claim)
    rpps = str(rpps or "")[:20]
    identity = _identity(issuer, subject, rpps)
    if identity is None:
        raise OidcError("identity_not_linked", details={"subject": subject[:64]})
    user = identity.user
    if not user.is_active:
        raise OidcError("inactive", user=user)
    problem = services.contract_problem(user, timezone.localdate())
    if problem:
        raise OidcError(problem, user=user)
    if throttle.account_verdict(user).locked:
        raise OidcError("locked", user=user)
    auth.login(request, user, backend=BACKEND)
    acr = str(claims.get("acr", ""))
    mfa = bool(acr) and acr in settings.DPI_OIDC_MFA_ACR
    if mfa:
        device, _created = FederatedDevice.objects.get_or_create(user=user, name=issuer[:64],
                                                                  defaults={"confirmed": True})
        import django_otp

        django_otp.login(request, device)
        services.session_rotate(request)
    services.auth_event(action="login", outcome="allowed", user=user, basis="oidc",
                    details={"method": "oidc", "issuer": issuer, "acr": acr[:40], "multi_factor": mfa})
    return user, str(flow.get("next") or "")
