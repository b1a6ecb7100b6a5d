"""Input no part of dpi accepts, refused before any view runs."""

from __future__ import annotations

import json

from django.http import HttpResponse, HttpResponseBadRequest
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
            return _bad_request(request, "malformed form data")
        if refused:
            return _bad_request(request, "NUL byte in the request")
        return self.get_response(request)


def _bad_request(request, message: str) -> HttpResponse:
    """The 400 in each channel's own shape: JSON for the REST API, an OperationOutcome for FHIR."""
    if request.path.startswith("/api/"):
        return HttpResponseBadRequest(json.dumps({"detail": message}), content_type="application/json")
    if request.path.startswith("/fhir/"):
        outcome = {"resourceType": "OperationOutcome",
                   "issue": [{"severity": "error", "code": "invalid", "diagnostics": message}]}
        return HttpResponseBadRequest(json.dumps(outcome), content_type="application/fhir+json")
    return HttpResponseBadRequest(message, content_type="text/plain")


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())
