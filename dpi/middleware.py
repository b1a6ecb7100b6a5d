"""Input no part of dpi accepts, refused before any view runs."""

from __future__ import annotations

from django.http import HttpResponseBadRequest
from django.http.multipartparser import MultiPartParserError

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_DRF_PREFIXES = ("/api/", "/fhir/")  # DRF's own parsers read those bodies; its fields refuse NUL bytes


class RejectNulBytesMiddleware:
    """400 for a NUL byte in the path, the query string or a form field: PostgreSQL text cannot hold one, so a
    filter passing it to a query raised a 500 (issue #13). API and FHIR bodies are left to DRF, whose fields
    refuse NUL bytes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            refused = "\x00" in request.path or _has_nul(request.GET) or (
                request.method == "POST" and request.content_type in _FORMS
                and not request.path.startswith(_DRF_PREFIXES) and _has_nul(request.POST)
            )
        except MultiPartParserError:
            return HttpResponseBadRequest("malformed form data", content_type="text/plain")
        if refused:
            return HttpResponseBadRequest("NUL byte in the request", content_type="text/plain")
        return self.get_response(request)


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())
