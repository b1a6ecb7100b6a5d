"""Sign-in through an OpenID Connect provider: Pro Santé Connect, or any provider that works the same way.

The protocol is Authlib's (``authlib.integrations.django_client``): authorization-code flow with PKCE (S256),
``state`` and ``nonce`` kept in the session, client authentication ``client_secret_basic``, discovery, the ID
token's signature checked against the provider's published keys and its claims checked (iss, aud, exp, iat,
nonce, at_hash: OpenID Connect Core 3.1.3.7) by Authlib with joserfc. No code of ours parses or verifies a JWT.

What dpi adds: only asymmetric signature algorithms are accepted (``ASYMMETRIC_ALGORITHMS``, whatever the
provider advertises: never ``none`` nor an HMAC keyed with the client secret), the discovery document must
name the configured issuer (https in production), the sign-in must finish within ``FLOW_MAX_AGE``; the
provider's ``sub`` (or, at the first sign-in, the RPPS claim) is mapped to a dpi account by ``OidcIdentity``:
no account is ever created from a token. Pro Santé Connect: ``acr_values=eidas1``, scope ``openid scope_all``,
discovery at ``.../realms/esante-wallet/.well-known/wallet-openid-configuration`` (``DPI_OIDC_DISCOVERY_URL``),
the RPPS in ``SubjectNameID``, the professional's record in ``SubjectRefPro`` (userinfo).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from typing import Any

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.django_client import DjangoOAuth2App
from authlib.integrations.django_client.integration import DjangoIntegration
from django.conf import settings
from django.contrib import auth
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from access.authn import throttle
from access.authn.models import FederatedDevice, OidcIdentity

SESSION_FLOW = "_dpi_oidc_flow"
FLOW_MAX_AGE = 600
HTTP_TIMEOUT = 10
CACHE_SECONDS = 3600  # discovery document and keys are fetched again after an hour (and on an unknown key id)
BACKEND = "access.authn.backends.ThrottledModelBackend"
# RSA, RSA-PSS and elliptic-curve signatures only: the provider's public keys can verify them, nobody else's
# secret can forge them. "none" and HS* (keyed with the client secret) are refused even if advertised.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# Claims of the Pro Santé Connect userinfo kept for linking and tracing (never stored beyond the identity link).
PSC_CLAIMS = ("SubjectNameID", "SubjectRefPro")


class OidcError(Exception):
    """Sign-in refused; ``code`` goes to the audit trail, the user sees a generic message."""

    def __init__(self, code: str, user: Any = None, details: dict[str, Any] | None = None):
        super().__init__(code)
        self.code = code
        self.user = user
        self.details = details or {}


def enabled() -> bool:
    return bool(settings.DPI_OIDC_ENABLED)


def discovery_url() -> str:
    return settings.DPI_OIDC_DISCOVERY_URL or settings.DPI_OIDC_ISSUER + "/.well-known/openid-configuration"


class ProviderClient(DjangoOAuth2App):
    """Authlib's Django client, with dpi's restrictions on what the provider's metadata may ask for."""

    def load_server_metadata(self) -> dict[str, Any]:
        fresh = "_loaded_at" not in self.server_metadata
        metadata = super().load_server_metadata()
        if fresh:
            if metadata.get("issuer") != settings.DPI_OIDC_ISSUER:
                self.server_metadata.clear()
                raise OidcError("discovery_issuer_mismatch")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                url = metadata.get(name)
                if not isinstance(url, str):
                    self.server_metadata.clear()
                    raise OidcError("discovery_incomplete")
                if settings.PRODUCTION and not url.startswith("https://"):
                    self.server_metadata.clear()
                    raise OidcError("insecure_endpoint")
            advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
            allowed = [alg for alg in advertised if alg in ASYMMETRIC_ALGORITHMS]
            if not allowed:
                self.server_metadata.clear()
                raise OidcError("no_asymmetric_algorithm")
            # Authlib verifies the ID token with exactly these algorithms (JWSRegistry).
            metadata["id_token_signing_alg_values_supported"] = allowed
        return metadata


_clients: dict[tuple[str, ...], tuple[float, ProviderClient]] = {}
_clients_lock = threading.Lock()


def client() -> ProviderClient:
    """The provider's client for the current settings; its metadata and keys are kept ``CACHE_SECONDS``."""
    key = (settings.DPI_OIDC_ISSUER, discovery_url(), settings.DPI_OIDC_CLIENT_ID, settings.DPI_OIDC_CLIENT_SECRET,
           settings.DPI_OIDC_SCOPES)
    now = time.monotonic()
    with _clients_lock:
        cached = _clients.get(key)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        instance = ProviderClient(
            DjangoIntegration("dpi_oidc"), name="dpi_oidc",
            client_id=settings.DPI_OIDC_CLIENT_ID, client_secret=settings.DPI_OIDC_CLIENT_SECRET,
            server_metadata_url=discovery_url(),
            client_kwargs={"scope": settings.DPI_OIDC_SCOPES, "code_challenge_method": "S256",
                           "token_endpoint_auth_method": "client_secret_basic", "default_timeout": HTTP_TIMEOUT})
        _clients.clear()
        _clients[key] = (now, instance)
        return instance


def redirect_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("authn-oidc-callback"))


def _provider_call(function, *args, **kwargs):
    """Network and protocol failures as OidcError codes (for the audit trail)."""
    try:
        return function(*args, **kwargs)
    except OidcError:
        raise
    except requests.RequestException as exc:
        raise OidcError("provider_unreachable", details={"error": type(exc).__name__}) from exc
    except (ValueError, KeyError) as exc:
        raise OidcError("provider_bad_json") from exc


def authorization_url(request: HttpRequest, *, next_url: str = "") -> str:
    """Start a sign-in: Authlib keeps state, nonce and PKCE verifier in the session; the provider's URL."""
    provider = client()
    params: dict[str, Any] = {"nonce": secrets.token_urlsafe(32)}
    if settings.DPI_OIDC_ACR_VALUES:
        params["acr_values"] = settings.DPI_OIDC_ACR_VALUES
    callback = redirect_uri(request)
    data = _provider_call(provider.create_authorization_url, callback, **params)
    provider.save_authorize_data(request, redirect_uri=callback, **data)
    request.session[SESSION_FLOW] = {"state": data["state"], "next": next_url, "at": time.time()}
    return data["url"]


def _userinfo(provider: ProviderClient, token: dict[str, Any], subject: str) -> dict[str, Any]:
    """The userinfo claims (JSON, or a JWT signed by the provider as Pro Santé Connect may send)."""
    endpoint = provider.load_server_metadata().get("userinfo_endpoint")
    if not endpoint or not token.get("access_token"):
        return {}
    response = _provider_call(provider.get, endpoint, token=token)
    if response.status_code != 200:
        raise OidcError("userinfo_invalid", details={"status": response.status_code})
    if "application/jwt" in response.headers.get("Content-Type", ""):
        try:
            keys = KeySet.import_key_set(_provider_call(provider.fetch_jwk_set))
            algorithms = provider.load_server_metadata()["id_token_signing_alg_values_supported"]
            decoded = jwt.decode(response.text.strip(), keys, registry=JWSRegistry(algorithms=algorithms))
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": settings.DPI_OIDC_ISSUER},
                                  aud={"value": settings.DPI_OIDC_CLIENT_ID}).validate(decoded.claims)
            info = decoded.claims
        except JoseError as exc:
            raise OidcError("userinfo_invalid") from exc
    else:
        info = _provider_call(response.json)
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
    if not request.GET.get("code"):
        raise OidcError("no_code")
    provider = client()
    try:
        # Token request (PKCE verifier, client_secret_basic), then the ID token verified by Authlib/joserfc.
        tokens = _provider_call(provider.authorize_access_token, request)
    except MismatchingStateError as exc:
        raise OidcError("state_mismatch") from exc
    except OAuthError as exc:
        raise OidcError("token_error", details={"error": str(exc.error)[:100]}) from exc
    except JoseError as exc:
        raise OidcError("id_token_invalid", details={"why": type(exc).__name__}) from exc
    claims = tokens.get("userinfo")
    if not claims:
        raise OidcError("no_id_token")
    issuer = settings.DPI_OIDC_ISSUER
    subject = str(claims["sub"])
    rpps_claim = settings.DPI_OIDC_RPPS_CLAIM
    rpps = claims.get(rpps_claim)
    extra: dict[str, Any] = {}
    if rpps is None and rpps_claim:
        info = _userinfo(provider, tokens, subject)
        rpps = info.get(rpps_claim)
        extra = {name: str(info[name])[:64] for name in PSC_CLAIMS if name in info and name != rpps_claim}
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
    details = {"method": "oidc", "issuer": issuer, "acr": acr[:40], "multi_factor": mfa}
    if "SubjectRefPro" in extra:
        details["subject_ref_pro"] = True  # present (its content describes the professional, not kept here)
    services.auth_event(action="login", outcome="allowed", user=user, basis="oidc", details=details)
    return user, str(flow.get("next") or "")
