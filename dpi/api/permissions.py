"""Scope check: a token call needs the scope ``<category>:<action>`` the view declares for the request.

A missing scope is refused with 403 and an access event (basis ``deny:scope``) on the audit connection,
before any patient data is touched. Signed-in people have no scopes: their role and care relationships
decide, in the gate.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from access import gate
from audit.services import event_record
from dpi.api.authentication import principal_of
from dpi.middleware import in_callers_language


class HasScope(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        principal = principal_of(request)
        if principal is None:
            return True
        needed = view.required_scope(request)
        if needed is None or needed in principal.scopes:
            return True
        category, _, action = needed.partition(":")
        event_record(
            actor=user,
            actor_role=str(gate.role_of(user) or ""),
            actor_unit=gate.unit_of(user),
            category=category if category != "audit" else "",
            action=action,
            outcome="denied",
            basis="deny:scope",
            reason=f"credential lacks scope {needed}",
            resource_type=getattr(view, "resource_type", ""),
            details={**principal.details(), "scope": needed, "path": request.path[:200]},
        )
        raise exceptions.PermissionDenied(
            in_callers_language(request, gettext_noop("this credential lacks the scope %(scope)s")) % {"scope": needed})
