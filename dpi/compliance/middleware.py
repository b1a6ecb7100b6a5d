"""Maintenance sessions: end them when the window ends, and write every request into the maintenance logbook."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpResponseForbidden
from django.utils import timezone
from django.utils.translation import gettext as _

from dpi.compliance.services import (
    active_window,
    is_maintenance_account,
    maintenance_log_record,
    maintenance_login_refused,
)


class MaintenanceSessionMiddleware:
    """After authentication: a maintenance account's session lives only inside its approved window."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not is_maintenance_account(user):
            return self.get_response(request)
        now = timezone.now()
        window = active_window(user, now)
        if window is None:
            maintenance_login_refused(user, now=now, channel_detail="session")
            logout(request)
            return HttpResponseForbidden(_("Maintenance window closed: session ended."))
        response = self.get_response(request)
        if not request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            maintenance_log_record(user=user, window=window, what=f"{request.method} {request.path}"[:500],
                                   details={"status": response.status_code})
        return response
