"""Attach the request's channel, id, address and user agent to every audit event it causes."""

from __future__ import annotations

import uuid

from audit.context import access_context


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
        request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        ip = request.META.get("REMOTE_ADDR") or None
        with access_context(
            channel=_channel(request.path),
            request_id=request_id,
            ip=ip,
            user_agent=request.headers.get("User-Agent", "")[:300],
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
