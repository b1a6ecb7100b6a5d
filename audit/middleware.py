"""Attach the request's channel, id, address and user agent to every audit event it causes."""

from __future__ import annotations

import re
import uuid

from audit.context import access_context, client_address

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


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
        # A caller's id is kept only if it is a plain token: it goes into logs and audit events as is.
        request_id = request.headers.get("X-Request-ID", "")
        if not _REQUEST_ID_RE.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        request.request_id = request_id  # read by dpi.logs for Django's own request log lines
        ip = client_address(request)  # behind a load balancer: the client, not the balancer
        with access_context(
            channel=_channel(request.path),
            request_id=request_id,
            ip=ip,
            user_agent=request.headers.get("User-Agent", "")[:300],
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
