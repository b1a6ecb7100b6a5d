"""``require_fresh_otp``: a view decorator for sensitive actions (break-the-glass, export, role change).

The action goes ahead if the user typed a one-time code less than ``DPI_FRESH_OTP_SECONDS`` ago, or types one
now in the ``otp_token`` field of the submitted form. Otherwise: HTML requests get the code form (status
403, posting to ``authn-fresh-otp`` and coming back here), API requests get 403 JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

TOKEN_FIELD = "otp_token"  # noqa: S105 - a form field name, not a secret


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/fhir/")) or "application/json" in request.headers.get("Accept", "")


def require_fresh_otp(view: Callable[..., HttpResponse] | None = None, *, max_age: int | None = None) -> Any:
    def decorator(func: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(func)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            from access.authn.services import has_fresh_otp, recent_otp_check

            if not request.user.is_authenticated:
                return JsonResponse({"detail": "authentication required"}, status=403) if _wants_json(
                    request) else render(request, "authn/fresh_otp.html", {"error": False}, status=403)
            if has_fresh_otp(request, max_age=max_age):
                return func(request, *args, **kwargs)
            token = request.POST.get(TOKEN_FIELD, "") if request.method == "POST" else ""
            if token and recent_otp_check(request, token):
                return func(request, *args, **kwargs)
            from access.decorators import refusal_record

            refusal_record(request, basis="deny:fresh_otp", reason="a fresh one-time code is required",
                           patient_id=kwargs.get("patient_id") if isinstance(kwargs.get("patient_id"), int) else None)
            if _wants_json(request):
                return JsonResponse({"detail": "a fresh one-time code is required", "code": "fresh_otp_required"},
                                    status=403)
            action = reverse("authn-fresh-otp") + "?" + urlencode({"next": request.get_full_path()})
            # "next" also brings a passkey confirmation back here (access.authn.passkeys).
            return render(request, "authn/fresh_otp.html",
                          {"action": action, "error": bool(token), "next": request.get_full_path()}, status=403)

        wrapped.requires_fresh_otp = True  # type: ignore[attr-defined]
        return wrapped

    if view is not None:
        return decorator(view)
    return decorator
