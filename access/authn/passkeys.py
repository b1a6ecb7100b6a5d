"""Passkeys (WebAuthn) as a second factor beside TOTP, through django-otp-webauthn (a django-otp device type).

The ceremony, the attestation and assertion checks are django-otp-webauthn's and py_webauthn's; dpi adds its
rules around them:

* a passkey is a **second** factor only: passwordless sign-in is off (``OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN``),
  the password step and its attempt limits always come first;
* adding a passkey needs a session already verified with the second factor (TOTP or a passkey);
* a passkey assertion counts like a typed code: at sign-in it verifies the session (``second_factor``), on the
  confirmation page of a sensitive action it is a fresh proof (``fresh_otp``: break-the-glass, exports, role
  changes); both rotate the session key and leave an audit event ``device: passkey``; a locked account is
  refused;
* the relying party is the host dpi is served under (``DPI_WEBAUTHN_RP_ID`` to pin it) and the accepted
  origins that host's (``DPI_WEBAUTHN_ORIGINS`` to pin them). WebAuthn needs a secure context: https, or
  http://localhost in development.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import path
from django.views.i18n import JavaScriptCatalog
from django_otp_webauthn import exceptions
from django_otp_webauthn import views as webauthn_views
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.models import WebAuthnCredential

from access.authn import services, throttle


def relying_party_id(request: HttpRequest) -> str:
    """``DPI_WEBAUTHN_RP_ID``, else the host name the request came to (without its port)."""
    if settings.DPI_WEBAUTHN_RP_ID:
        return settings.DPI_WEBAUTHN_RP_ID
    return request.get_host().rsplit(":", 1)[0].strip("[]")


class PasskeyHelper(WebAuthnHelper):
    """Relying party and origins from dpi's settings, or from the host the request came to."""

    def get_relying_party_domain(self) -> str:
        return relying_party_id(self.request)

    def get_relying_party_name(self) -> str:
        return settings.DPI_OTP_ISSUER

    def get_allowed_origins(self) -> list[str]:
        if settings.DPI_WEBAUTHN_ORIGINS:
            return list(settings.DPI_WEBAUTHN_ORIGINS)
        # The Host header is one of ALLOWED_HOSTS; a relaying site's pages carry their own origin, never this one.
        return [f"{self.request.scheme}://{self.request.get_host()}"]


class AccountLocked(exceptions.OTPWebAuthnApiError):
    status_code = 403
    code = "account_locked"
    default_detail = "account locked"


class RegistrationBegin(webauthn_views.BeginCredentialRegistrationView):
    def check_can_register(self) -> None:
        if not services.is_verified(self.request.user):
            raise exceptions.NotVerified()


class RegistrationComplete(webauthn_views.CompleteCredentialRegistrationView):
    def check_can_register(self) -> None:
        if not services.is_verified(self.request.user):
            raise exceptions.NotVerified()

    def post(self, *args: Any, **kwargs: Any):
        response = super().post(*args, **kwargs)
        services.auth_event(action="account", outcome="allowed", user=self.request.user, basis="otp_enrolled",
                            reason="passkey added", details={"device": "passkey"})
        return response


class AuthenticationComplete(webauthn_views.CompleteCredentialAuthenticationView):
    def check_device_usable(self, device: WebAuthnCredential) -> None:
        super().check_device_usable(device)
        if throttle.account_verdict(device.user).blocked:
            raise AccountLocked()

    def complete_auth(self, device: WebAuthnCredential) -> None:
        request = self.request
        was_verified = services.is_verified(request.user)
        super().complete_auth(device)  # django_otp.login(request, device)
        throttle.account_succeeded(device.user)
        if was_verified:  # the confirmation page of a sensitive action: a fresh proof
            request.session[services.FRESH_OTP_AT] = time.time()
        services.session_rotate(request)
        services.auth_event(action="login", outcome="allowed", user=device.user,
                            basis="fresh_otp" if was_verified else "second_factor", details={"device": "passkey"})


def has_passkey(user: Any) -> bool:
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()


def passkeys_of(user: Any) -> list[WebAuthnCredential]:
    return list(WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created_at"))


# Same names as django_otp_webauthn.urls (its template tags reverse them), dpi's views.
urlpatterns = [
    path("registration/begin/", RegistrationBegin.as_view(), name="credential-registration-begin"),
    path("registration/complete/", RegistrationComplete.as_view(), name="credential-registration-complete"),
    path("authentication/begin/", webauthn_views.BeginCredentialAuthenticationView.as_view(),
         name="credential-authentication-begin"),
    path("authentication/complete/", AuthenticationComplete.as_view(), name="credential-authentication-complete"),
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]), name="js-i18n-catalog"),
]
URL_NAMES = tuple(f"otp_webauthn:{pattern.name}" for pattern in urlpatterns)


def is_passkey_request(request: HttpRequest) -> bool:
    return request.path.startswith("/accounts/passkeys/")
