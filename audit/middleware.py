"""Attach the request's channel, id, address and user agent to every audit event it causes."""

from __future__ import annotations

import re
import uuid

from audit.context import access_context, asked_resource, client_address, refusal_tracking
from dpi.logs import mask_nir

# Answers that refuse the request: each one has a denied access event naming what was asked for.
REFUSAL_STATUSES = frozenset({401, 403})

# A caller's X-Request-ID is kept only when it is an opaque token, a UUID or 16 to 64 hexadecimal digits: it goes
# into every log line and audit event of the request, where a name, a birth date or an NIR must never be (a
# "plain token" of letters and digits could be "DUPONT-JEAN-1850599123456"). Any other is replaced by our own.
_REQUEST_ID_RE = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16,64}")


def _channel(path: str) -> str:
    if path.startswith(("/api/", "/fhir/")):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "web"


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Headers read from META: ``request.headers`` would copy every header of every request (issue #18).
        # A caller's id is kept only if it is a plain token: it goes into logs and audit events as is.
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")
        if not _REQUEST_ID_RE.fullmatch(request_id) or mask_nir(request_id) != request_id:
            request_id = uuid.uuid4().hex
        request.request_id = request_id  # read by dpi.logs for Django's own request log lines
        ip = client_address(request)  # behind a load balancer: the client, not the balancer
        with access_context(
            channel=_channel(request.path),
            request_id=request_id,
            ip=ip,
            user_agent=mask_nir(request.META.get("HTTP_USER_AGENT", "")[:300]),  # chosen by the client
        ), refusal_tracking() as denied:
            response = self.get_response(request)
            if response.status_code in REFUSAL_STATUSES and not denied[0]:
                _refusal_record(request, response.status_code)
        response["X-Request-ID"] = request_id
        return response


def _refusal_record(request, status: int) -> None:
    """A refusal that no view or decorator recorded (a library's 401 or 403: CSRF, passkey ceremony, a view of
    a dependency): the same denied event as any other, naming the path asked for."""
    from audit.services import event_record

    user = getattr(request, "user", None)
    known = user is not None and getattr(user, "is_authenticated", False)
    asked = asked_resource(request)
    event_record(
        actor=user if known else None,
        action="view" if request.method in {"GET", "HEAD"} else "other",
        outcome="denied",
        basis="deny:refused" if known else "deny:anonymous",
        reason=f"HTTP {status}",
        patient_id=asked["patient_id"],
        resource_type=asked["resource_type"],
        # A typed resource by its id (/fhir/Patient/12: "Patient", "12"), else the page by its path.
        resource_id=(asked["resource_id"] if asked["resource_type"] != "page" else "") or request.path[:64],
        details={"path": request.path[:200], "status": status},
    )
