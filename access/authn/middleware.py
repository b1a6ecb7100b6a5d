"""Server-side enforcement of the authentication rules (templates decide nothing).

In ``MIDDLEWARE``:

* ``SecurityHeadersMiddleware`` right after ``SecurityMiddleware``: Content-Security-Policy with a per-request
  nonce (``request.csp_nonce``), Permissions-Policy, Cross-Origin-Resource-Policy, and ``Cache-Control:
  no-store`` on every answer to a signed-in user (health data must not stay in browser or proxy caches).
* ``SessionTimeoutMiddleware`` then ``AuthenticationStepsMiddleware`` right after django-otp's
  ``OTPMiddleware``: idle timeout and absolute lifetime; then a signed-in user who still owes a second factor
  (or a password change) reaches only the pages of that step and sign-out. The API answers 403 JSON, FHIR a
  403 OperationOutcome.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext, gettext_noop

from access.authn import services

API_PREFIXES = ("/api/", "/fhir/")


def _is_api(request: HttpRequest) -> bool:
    """A call of the REST API or FHIR, answered in data rather than by a redirect; but the API's documentation
    page opened in a browser is a page (it is sent to the sign-in steps like any other)."""
    if not request.path.startswith(API_PREFIXES):
        return False
    return not (request.path == reverse("api-docs") and "text/html" in request.headers.get("Accept", ""))


# OperationOutcome issue codes of the answers below (FHIR R4 issue-type).
_FHIR_ISSUE = {401: "login", 403: "forbidden"}


def _api_error(request: HttpRequest, *, status: int, detail: str, code: str) -> HttpResponse:
    """The channel's error shape: under /fhir/ every answer is FHIR (an OperationOutcome, application/fhir+json),
    under /api/ the REST API's ``{"detail", "code"}``, ``detail`` in the caller's language (FHIR's in English)."""
    if request.path.startswith("/fhir/"):
        outcome = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": _FHIR_ISSUE[status], "details": {"text": code}, "diagnostics": detail}]}
        return JsonResponse(outcome, status=status, content_type="application/fhir+json")
    return JsonResponse({"detail": gettext(detail), "code": code}, status=status)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(18)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(nonce)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
        response.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            patch_cache_control(response, no_store=True, private=True)
        return response


def content_security_policy(nonce: str) -> str:
    """Same-origin only; scripts and styles only from our files or carrying the request's nonce."""
    directives = [
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        f"style-src 'self' 'nonce-{nonce}'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    if settings.PRODUCTION:
        directives.append("upgrade-insecure-requests")
    return "; ".join(directives)


class SessionTimeoutMiddleware:
    """Idle timeout (``DPI_SESSION_IDLE_SECONDS``) and absolute lifetime (``DPI_SESSION_ABSOLUTE_SECONDS``),
    kept in the session on the server: an expired session is signed out and traced."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            reason = services.session_expiry(request)
            if reason is not None:
                services.session_end(request, reason=reason)
                if _is_api(request) or request.headers.get("Accept", "").startswith("application/json"):
                    return _api_error(request, status=401, detail="session expired", code=f"session_expired_{reason}")
                query = {"next": request.get_full_path(), "expired": reason}
                return redirect(reverse("login") + "?" + urlencode(query))
        return self.get_response(request)


STEP_URLS = {
    "enrol": "authn-enrol",
    "second_factor": "authn-second-factor",
    "password_change": "password_change",
}
# Pages a user may reach while a step is pending (besides the step's own page).
ALWAYS_ALLOWED = ("logout", "login", "authn-second-factor", "authn-enrol")


class AuthenticationStepsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and services.gate.is_token_only(request.user):
            # Integration accounts act by API token only: any interactive session of theirs ends here.
            from access.decorators import refusal_record

            refusal_record(request, basis="deny:token_only", reason="integration accounts act by API token only")
            services.session_end(request, reason="token_only")
            if _is_api(request):
                return _api_error(request, status=401, detail=gettext_noop("authentication required"),
                                  code="token_only")
            return redirect(reverse("login"))
        step = services.pending_step(request) if request.user.is_authenticated else None
        if step is not None and not self._allowed(request, step):
            if _is_api(request):
                code = "password_change_required" if step == "password_change" else "second_factor_required"
                detail = (gettext_noop("a password change is required") if step == "password_change"
                          else gettext_noop("a verified second factor is required"))
                from access.decorators import refusal_record

                refusal_record(request, basis="deny:" + step, reason=detail)
                return _api_error(request, status=403, detail=detail, code=code)
            target = reverse(STEP_URLS[step])
            return redirect(target + "?" + urlencode({"next": request.get_full_path()}))
        return self.get_response(request)

    @staticmethod
    def _allowed(request: HttpRequest, step: str) -> bool:
        path = request.path
        if path.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL):
            return True
        from access.authn.passkeys import URL_NAMES as PASSKEY_URLS  # the passkey ceremony is a second factor

        allowed = {reverse(name) for name in ALWAYS_ALLOWED + PASSKEY_URLS} | {reverse(STEP_URLS[step])}
        return path in allowed
