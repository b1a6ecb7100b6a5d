"""Home page, and the browser side of the idle lock (the server enforces the same timeout on its own).

The page script (dpi/static/dpi.js) warns before the idle timeout, then posts to ``session_lock``, which ends
the session, and shows the lock screen: no patient data stays on a screen left unattended.
Activity in the page (typing a long note) is reported with ``session_ping`` so that the server's idle
clock and the page's agree.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth import logout
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from access import gate
from dpi.web.permissions import home_for


@never_cache
def home(request):
    """Anonymous: straight to sign-in. Signed in: the role's own page (or a short explanation)."""
    if not request.user.is_authenticated:
        return redirect("login")
    target = home_for(gate.role_of(request.user))
    if target:
        return redirect(target)
    return render(request, "home.html")


def _safe_next(request, value: str) -> str:
    if value and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return value
    return ""


def _session_end(request) -> None:
    """Sign out through the authentication area (it traces the logout), or plainly if it is not installed."""
    try:
        from access.authn.services import session_end
    except ImportError:
        logout(request)
    else:
        session_end(request, reason="idle")


@require_POST
def session_lock(request):
    """End the session (idle lock). Answers JSON for the page script, or redirects to the lock screen."""
    next_url = _safe_next(request, request.POST.get("next", ""))
    if request.user.is_authenticated:
        _session_end(request)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"locked": True})
    response = redirect("web:session_locked")
    if next_url:
        response["Location"] += "?" + urlencode({"next": next_url})
    return response


@never_cache
def session_locked(request):
    return render(request, "web/locked.html", {"next": _safe_next(request, request.GET.get("next", ""))})


@require_POST
def session_ping(request):
    """The user is active in the page: keeps the server's idle clock in step. 204, or 401 once expired."""
    return HttpResponse(status=204 if request.user.is_authenticated else 401)
