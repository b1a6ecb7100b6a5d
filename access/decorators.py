"""View decorators of ``access`` for pages that are not about one patient (compliance, retention, DPO JSON
views): "is this an active account of one of these roles, with its second factor?". Every refusal is an
access event, like the gate's (issue 13, finding 6): anonymous, wrong role, second factor owed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse

from access import gate
from access.policy import Role
from audit.context import asked_resource
from audit.services import event_record


def refusal_record(
    request: HttpRequest,
    *,
    basis: str,
    reason: str,
    patient_id: int | None = None,
    resource_type: str = "page",
    resource_id: Any = "",
    action: str = "",
) -> None:
    """A refused request, recorded on the independent audit connection with the path asked for, and the
    patient its URL names when the caller does not give one (``audit.context.asked_resource``)."""
    if patient_id is None:
        patient_id = asked_resource(request)["patient_id"]
    user = getattr(request, "user", None)
    known = user is not None and getattr(user, "is_authenticated", False)
    role = gate.role_of(user) if known else None
    event_record(
        actor=user if known else None,
        actor_role=role.value if role else "",
        actor_unit=gate.unit_of(user) if known else "",
        patient_id=patient_id,
        action=action or ("view" if request.method in {"GET", "HEAD"} else "other"),
        outcome="denied",
        basis=basis,
        reason=reason,
        resource_type=resource_type,
        resource_id=str(resource_id)[:64],
        details={"path": request.path[:200]},
    )


def account_refusal(user: Any, roles: Iterable[Role]) -> tuple[str, str] | None:
    """Why this user may not use a page reserved to ``roles`` (None: they may)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "deny:anonymous", "authentication required"
    role = gate.role_of(user)
    if not user.is_active or role not in set(roles):
        return "deny:role", "not allowed for this role"
    needs = gate.user_requires_second_factor(user)
    verified = getattr(user, "is_verified", None)
    if needs and callable(verified) and not verified():
        return "deny:second_factor", "a verified second factor is required"
    return None


def roles_required(*roles: Role, resource_type: str = "page") -> Callable:
    """JSON views: 401 for anonymous, 403 otherwise; each refusal recorded."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            problem = account_refusal(request.user, roles)
            if problem is not None:
                refusal_record(request, basis=problem[0], reason=problem[1], resource_type=resource_type,
                               resource_id=next(iter(kwargs.values()), ""))
                if problem[0] == "deny:anonymous":
                    return JsonResponse({"error": problem[1]}, status=401)
                raise PermissionDenied(problem[1])
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
