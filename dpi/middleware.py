"""Input no part of dpi accepts, refused before any view runs."""

from __future__ import annotations

from django.http import HttpResponseBadRequest

_FORM = "application/x-www-form-urlencoded"


class RejectNulBytesMiddleware:
    """400 for a NUL byte in the path, the query string or a form field: PostgreSQL text cannot hold one, so a
    filter passing it to a query raised a 500 (issue #13). JSON bodies are checked by DRF's fields; multipart
    uploads by the forms that read them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or _has_nul(request.GET) or (
            request.method == "POST" and request.content_type == _FORM and _has_nul(request.POST)
        ):
            return HttpResponseBadRequest("NUL byte in the request", content_type="text/plain")
        return self.get_response(request)


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())
