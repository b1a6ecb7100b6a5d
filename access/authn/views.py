"""Sign-in pages. Thin: the rules live in access.authn.services and are enforced by the middleware."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from access.authn import oidc, services, throttle
from access.authn.decorators import require_fresh_otp
from access.authn.forms import ForcedPasswordChangeForm, OneTimeCodeForm, SignInForm
from access.authn.middleware import STEP_URLS


def _safe_next(request: HttpRequest, default: str = "") -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    # A path only: redirect() would take a bare word ("next=zz") for a URL name and fail to reverse it.
    if candidate.startswith("/") and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                                     require_https=request.is_secure()):
        return candidate
    return default or reverse(settings.LOGIN_REDIRECT_URL)


def _continue(request: HttpRequest) -> HttpResponse:
    """Go to the next pending step of sign-in, or where the user was going."""
    step = services.pending_step(request)
    target = _safe_next(request)
    if step is not None:
        return redirect(reverse(STEP_URLS[step]) + "?" + urlencode({"next": target}))
    return redirect(target)


def _oidc_context() -> dict:
    return {"oidc_enabled": oidc.enabled(), "oidc_label": settings.DPI_OIDC_LABEL}


class SignInView(LoginView):
    form_class = SignInForm
    template_name = "registration/login.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(_oidc_context())
        context["expired"] = self.request.GET.get("expired") in {"idle", "absolute"}
        return context

    def form_valid(self, form):
        auth.login(self.request, form.get_user())
        return _continue(self.request)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("token")
def second_factor(request: HttpRequest) -> HttpResponse:
    if services.is_verified(request.user):
        return _continue(request)
    if not services.has_second_factor_device(request.user):
        return _continue(request)
    form = OneTimeCodeForm(request.POST or None)
    error = False
    if request.method == "POST" and form.is_valid():
        if services.second_factor_verify(request, form.cleaned_data["token"]):
            return _continue(request)
        if not request.user.is_authenticated:  # locked: the session was ended
            return redirect(reverse("login") + "?locked=1")
        error = True
    return render(request, "authn/second_factor.html",
                  {"form": form, "error": error, "next": _safe_next(request)}, status=403 if error else 200)


@never_cache
@login_required
@sensitive_post_parameters("token")
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """First sign-in: scan the QR code, type the first code; replacing an authenticator needs a fresh code."""
    user = request.user
    if services.has_second_factor_device(user) and not (services.is_verified(user)
                                                        and services.has_fresh_otp(request)):
        if services.is_verified(user):
            return redirect(reverse("authn-fresh-otp") + "?next=" + reverse("authn-enrol"))
        return _continue(request)
    form = OneTimeCodeForm(request.POST or None)
    error = False
    if request.method == "POST" and form.is_valid():
        codes = services.totp_enrol_confirm(request, form.cleaned_data["token"])
        if codes is not None:
            return render(request, "authn/backup_codes.html",
                          {"codes": codes, "next": _safe_next(request), "enrolled": True})
        if not request.user.is_authenticated:
            return redirect(reverse("login") + "?locked=1")
        error = True
    device = services.totp_enrolment_device(user)
    return render(request, "authn/enrol.html", {
        "form": form, "error": error, "next": _safe_next(request), "qr_svg": services.totp_qr_svg(device),
        "secret": services.totp_secret_text(device), "issuer": settings.DPI_OTP_ISSUER,
    }, status=403 if error else 200)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def backup_codes(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _backup_codes_issue(request)
    remaining = services.StaticToken.objects.filter(device__user=request.user).count()
    return render(request, "authn/backup_codes.html", {"codes": None, "remaining": remaining})


@require_fresh_otp
def _backup_codes_issue(request: HttpRequest) -> HttpResponse:
    codes = services.backup_codes_issue(request.user)
    services.auth_event(action="account", outcome="allowed", user=request.user, basis="backup_codes",
                    reason="new backup codes issued")
    return render(request, "authn/backup_codes.html", {"codes": codes, "next": reverse("authn-sessions")})


@never_cache
@login_required
@sensitive_post_parameters("token")
@require_http_methods(["GET", "POST"])
def fresh_otp(request: HttpRequest) -> HttpResponse:
    """Type a one-time code before a sensitive action; then back to it."""
    form = OneTimeCodeForm(request.POST or None)
    error = False
    if request.method == "POST" and form.is_valid():
        if services.recent_otp_check(request, form.cleaned_data["token"]):
            return redirect(_safe_next(request))
        if not request.user.is_authenticated:
            return redirect(reverse("login") + "?locked=1")
        error = True
    return render(request, "authn/fresh_otp.html", {
        "form": form, "error": error, "next": _safe_next(request), "action": request.get_full_path(),
        "has_device": services.has_second_factor_device(request.user)}, status=403 if error else 200)


@never_cache
@login_required
@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@csrf_protect
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = ForcedPasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            services.password_changed(request, form.user)
            return _continue(request)
        if "old_password" in form.errors:
            # Guessing the current password from an open session counts like a failed sign-in.
            verdict = throttle.account_failed(request.user, address=throttle.client_address(request))
            services.auth_event(action="login_failure", outcome="denied", user=request.user,
                            basis="password_change", reason="wrong current password")
            if verdict.locked:
                services.session_end(request, reason="locked")
                return redirect(reverse("login") + "?locked=1")
    return render(request, "registration/password_change_form.html", {
        "form": form, "forced": services.password_change_required(request.user), "next": _safe_next(request)})


@never_cache
@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        services.session_end(request, reason="user")
        return redirect(settings.LOGOUT_REDIRECT_URL)
    return render(request, "authn/logout.html")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def sessions(request: HttpRequest) -> HttpResponse:
    """The user's open sessions, and "sign out everywhere"."""
    if request.method == "POST":
        services.sessions_end_all(request.user, reason="user", by=request.user)
        auth.logout(request)
        return redirect(settings.LOGOUT_REDIRECT_URL)
    return render(request, "authn/sessions.html", {
        "sessions": services.sessions_of(request.user), "current": request.session.session_key})


@never_cache
def oidc_login(request: HttpRequest) -> HttpResponse:
    if not oidc.enabled():
        raise Http404
    try:
        return redirect(oidc.authorization_url(request, next_url=_safe_next(request)))
    except oidc.OidcError as exc:
        return _oidc_failed(request, exc)


@never_cache
def oidc_callback(request: HttpRequest) -> HttpResponse:
    if not oidc.enabled():
        raise Http404
    try:
        _user, next_url = oidc.complete(request)
    except oidc.OidcError as exc:
        return _oidc_failed(request, exc)
    step = services.pending_step(request)
    if step is not None:
        return redirect(reverse(STEP_URLS[step]) + "?" + urlencode({"next": next_url or reverse("home")}))
    return redirect(next_url or settings.LOGIN_REDIRECT_URL)


def _oidc_failed(request: HttpRequest, exc: oidc.OidcError) -> HttpResponse:
    services.auth_event(action="login_failure", outcome="denied", user=exc.user, basis=f"oidc:{exc.code}"[:40],
                    reason=f"sign-in through {settings.DPI_OIDC_LABEL} refused",
                    details={"method": "oidc", **exc.details})
    message = _("Sign-in through %(label)s did not succeed.") % {"label": settings.DPI_OIDC_LABEL}
    return render(request, "registration/login.html",
                  {"form": SignInForm(request), "oidc_error": message, **_oidc_context()}, status=403)
