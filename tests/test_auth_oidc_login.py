"""Pro Santé Connect ready: sign-in through an OpenID Connect provider (run by the test on 127.0.0.1) with the
authorization-code flow and PKCE, the ID token's signature and claims checked (by Authlib/joserfc), ``sub``/RPPS
mapped to an account by OidcIdentity; a forged or replayed token, an HMAC or unsigned token, an unlinked
identity, a disabled account are refused; no module of dpi parses or verifies a JWT itself."""

import re
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse

from access.authn import oidc, services
from access.authn.models import FederatedDevice, OidcIdentity
from access.policy import Role
from tests.auth_oidc_provider import PSC_DISCOVERY, Provider
from tests.auth_support import person
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def provider(settings, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with Provider() as p:
        oidc._clients.clear()  # a new provider (new port, new keys) per test
        settings.DPI_OIDC_ENABLED = True
        settings.DPI_OIDC_ISSUER = p.issuer
        settings.DPI_OIDC_CLIENT_ID = p.client_id
        settings.DPI_OIDC_CLIENT_SECRET = p.client_secret
        settings.DPI_OIDC_SCOPES = "openid scope_all"
        settings.DPI_OIDC_RPPS_CLAIM = "SubjectNameID"
        settings.DPI_OIDC_MFA_ACR = []
        settings.DPI_OIDC_DISCOVERY_URL = ""
        settings.DPI_OIDC_ACR_VALUES = ""
        yield p
        oidc._clients.clear()


def _round_trip(client, next_url="/"):
    """Browser: dpi -> provider's authorize (auto-approved) -> back to dpi's callback."""
    response = client.get(reverse("authn-oidc-login"), {"next": next_url})
    assert response.status_code == 302
    authorize = response["Location"]
    params = parse_qs(urlparse(authorize).query)
    assert params["code_challenge_method"] == ["S256"] and len(params["code_challenge"][0]) == 43
    assert "code_verifier" not in authorize
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(authorize, timeout=10)  # noqa: S310 - local test provider
    except urllib.error.HTTPError as redirect:
        back = redirect.headers["Location"]
    callback = urlparse(back)
    assert callback.path == reverse("authn-oidc-callback")
    return client.get(callback.path + "?" + callback.query)


def test_a_linked_professional_signs_in_and_still_gives_the_second_factor(provider, client):
    user = person("dr.psc", Role.PHYSICIAN)
    services.oidc_identity_link(user, by=None, issuer=provider.issuer, rpps="899700000001")
    response = _round_trip(client)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    # the provider's acr is not configured as multi-factor here: dpi's own second factor is asked
    assert response["Location"].startswith(reverse("authn-enrol"))
    identity = OidcIdentity.objects.get(user=user)
    assert identity.subject == provider.subject  # bound at the first sign-in
    [request] = provider.token_requests
    assert request["grant_type"] == "authorization_code" and len(request["code_verifier"]) >= 43
    [event] = audit_events(action="login", basis="oidc")
    assert event.actor_id == user.pk and event.details["multi_factor"] is False


def test_a_multi_factor_acr_counts_as_the_second_factor(provider, client, settings):
    settings.DPI_OIDC_MFA_ACR = ["eidas1"]
    user = person("dr.card", Role.PHYSICIAN)
    OidcIdentity.objects.create(user=user, issuer=provider.issuer, subject=provider.subject)
    response = _round_trip(client, next_url=reverse("web:patient_search"))
    assert response["Location"] == reverse("web:patient_search")
    assert FederatedDevice.objects.filter(user=user).exists()
    assert client.get(reverse("web:patient_search")).status_code == 200


@pytest.mark.parametrize("mode", ["bad_signature", "wrong_audience", "wrong_nonce", "expired", "hs256", "alg_none"])
def test_a_forged_or_replayed_token_is_refused(provider, client, mode):
    user = person("dr.victim", Role.DPO)
    OidcIdentity.objects.create(user=user, issuer=provider.issuer, subject=provider.subject)
    provider.mode = mode
    response = _round_trip(client)
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    assert audit_events(action="login_failure", basis="oidc:id_token_invalid")


def test_an_unlinked_identity_or_a_disabled_account_is_refused(provider, client):
    response = _round_trip(client)
    assert response.status_code == 403 and "_auth_user_id" not in client.session
    assert audit_events(action="login_failure", basis="oidc:identity_not_linked")
    user = person("dr.gone", Role.DPO)
    OidcIdentity.objects.create(user=user, issuer=provider.issuer, subject=provider.subject)
    user.is_active = False
    user.save()
    assert _round_trip(client).status_code == 403
    assert audit_events(action="login_failure", basis="oidc:inactive", actor_id=user.pk)


def test_a_callback_without_a_pending_sign_in_or_with_a_wrong_state_is_refused(provider, client):
    assert client.get(reverse("authn-oidc-callback"), {"code": "x", "state": "y"}).status_code == 403
    client.get(reverse("authn-oidc-login"))
    assert client.get(reverse("authn-oidc-callback"), {"code": "x", "state": "forged"}).status_code == 403
    assert provider.token_requests == []


def test_the_login_page_offers_it_only_when_enabled(client, settings):
    settings.DPI_OIDC_ENABLED = False
    assert client.get(reverse("authn-oidc-login")).status_code == 404
    assert b"oidc" not in client.get(reverse("login")).content


def test_pro_sante_connect_discovery_path_acr_scope_and_signed_userinfo(provider, client, settings):
    """PSC: metadata at .../realms/esante-wallet/.well-known/wallet-openid-configuration, acr_values=eidas1,
    scope "openid scope_all", userinfo as a signed JWT carrying SubjectNameID (RPPS) and SubjectRefPro."""
    settings.DPI_OIDC_DISCOVERY_URL = provider.issuer + PSC_DISCOVERY
    settings.DPI_OIDC_ACR_VALUES = "eidas1"
    settings.DPI_OIDC_MFA_ACR = ["eidas1"]
    provider.userinfo_as_jwt = True
    provider.userinfo = {"SubjectNameID": "899700000001", "SubjectRefPro": {"codeCivilite": "DR"}}
    user = person("dr.psc2", Role.PHYSICIAN)
    services.oidc_identity_link(user, by=None, issuer=provider.issuer, rpps="899700000001")
    response = _round_trip(client, next_url=reverse("web:patient_search"))
    assert response["Location"] == reverse("web:patient_search")
    [authorize] = provider.authorize_requests
    assert authorize["acr_values"] == "eidas1" and authorize["scope"] == "openid scope_all"
    assert OidcIdentity.objects.get(user=user).subject == provider.subject
    [event] = audit_events(action="login", basis="oidc")
    assert event.details["multi_factor"] is True and event.details["acr"] == "eidas1"


def test_a_userinfo_jwt_signed_with_another_key_is_refused(provider, client):
    provider.userinfo_as_jwt = True
    user = person("dr.forged", Role.PHYSICIAN)
    services.oidc_identity_link(user, by=None, issuer=provider.issuer, rpps="899700000001")
    provider.mode = "bad_userinfo_signature"  # the ID token is genuine, the userinfo JWT is not
    response = _round_trip(client)
    assert response.status_code == 403 and "_auth_user_id" not in client.session
    assert audit_events(action="login_failure", basis="oidc:userinfo_invalid")


# Signs of hand-written JOSE: base64url padding games, signature verification primitives, JWT splitting.
_JWT_HANDLING = re.compile(r"urlsafe_b64decode|urlsafe_b64encode|\.verify\(|PKCS1v15|ECDSA\(|"
                           r"split\(\s*[\"']\.[\"']|rsplit\(\s*[\"']\.[\"']|hmac\.new\([^)]*sha256")


def test_no_module_of_dpi_parses_or_verifies_jwts():
    root = Path(__file__).resolve().parent.parent
    assert not (root / "access" / "authn" / "jose.py").exists()
    offenders = []
    for package in ("access", "audit", "dpi", "patients", "retention"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            if ("jwt" in text.lower() or "jws" in text.lower()) and _JWT_HANDLING.search(text):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
    # the ID token is verified by Authlib with joserfc, restricted to asymmetric algorithms
    assert "HS256" not in oidc.ASYMMETRIC_ALGORITHMS and "none" not in oidc.ASYMMETRIC_ALGORITHMS
