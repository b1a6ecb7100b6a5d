"""Input no part of dpi accepts, refused before any view runs."""

from __future__ import annotations

import json
import threading

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, HttpResponseBadRequest
from django.http.multipartparser import MultiPartParserError
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation
from django.utils.translation import gettext_noop
from django.utils.translation.trans_real import parse_accept_lang_header

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
            return _bad_request(request, gettext_noop("malformed form data"))
        if refused:
            return _bad_request(request, gettext_noop("NUL byte in the request"))
        return self.get_response(request)


def _bad_request(request, message: str) -> HttpResponse:
    """The 400 in each channel's own shape: JSON for the REST API (in its caller's language: this runs before
    the language is chosen), an OperationOutcome for FHIR (in English, as all of FHIR)."""
    if is_api_call(request):
        with translation.override(api_language(request)):
            detail = translation.gettext(message)
        return HttpResponseBadRequest(json.dumps({"detail": detail}), content_type="application/json")
    if request.path.startswith("/fhir/"):
        outcome = {"resourceType": "OperationOutcome",
                   "issue": [{"severity": "error", "code": "invalid", "diagnostics": message}]}
        return HttpResponseBadRequest(json.dumps(outcome), content_type="application/fhir+json")
    return HttpResponseBadRequest(message, content_type="text/plain")


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())


# --- the language of each channel --------------------------------------------------------------------------
_API_PREFIX = "/api/"
_BROWSER_PAGES = ("/api/docs/",)  # an HTML page under /api/: always through the whole stack
API_DEFAULT_LANGUAGE = "en"


def is_api_call(request) -> bool:
    """A call to the REST API (not its HTML documentation page, which is the browser's)."""
    return request.path.startswith(_API_PREFIX) and not request.path.startswith(_BROWSER_PAGES)


def api_language(request) -> str:
    """The REST API's language: the first language of ``Accept-Language`` that dpi speaks, else English, as
    FHIR, HL7 and DRF's own messages (machines integrate with it; the browser's language cookie and French
    default are the UI's). ``Accept-Language: fr`` gives every message in French, DRF's included."""
    for code, quality in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")):
        if code == "*":
            break
        if quality <= 0:
            continue
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return API_DEFAULT_LANGUAGE


def in_callers_language(request, message: str) -> str:
    """``message`` (an English msgid) for the caller of code shared by the REST API and FHIR (authentication,
    scopes, methods): translated for a REST call, English for FHIR (whose request keeps the browser's language
    for the French displays of its resources)."""
    return translation.gettext(message) if is_api_call(request) else message


class LocaleMiddleware(DjangoLocaleMiddleware):
    """Django's choice for the browser (language cookie, ``Accept-Language``, else ``LANGUAGE_CODE``, French);
    ``api_language`` for the REST API. FHIR and HL7 answer in English whatever this chose (their views
    override it). The answer still says its language (``Content-Language``, ``Vary: Accept-Language``)."""

    def process_request(self, request):
        if not is_api_call(request):
            return super().process_request(request)
        language = api_language(request)
        translation.activate(language)
        request.LANGUAGE_CODE = language
        return None


# --- bearer-token calls skip the browser's middleware ------------------------------------------------------
_BEARER_PREFIXES = ("/api/", "/fhir/")
_pending_end = threading.local()


def bearer_call(request) -> bool:
    """A call to the REST API or FHIR with an API token and no session cookie: the browser's middleware (CSRF,
    authentication from the session, second factor, session expiry, maintenance sessions, messages) has nothing
    to do for it: with no session cookie its user is anonymous to all of them, and DRF's token authentication
    sets the request's user. The answer is the same; the call costs less (issue #18)."""
    found = getattr(request, "_dpi_bearer_call", None)
    if found is None:
        path = request.path
        found = (
            path.startswith(_BEARER_PREFIXES)
            and not path.startswith(_BROWSER_PAGES)
            and request.META.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer "
            and settings.SESSION_COOKIE_NAME not in request.COOKIES
        )
        request._dpi_bearer_call = found
    return found


class BrowserMiddlewareEnd:
    """Marks the end of the browser's middleware in ``MIDDLEWARE`` (see ``BrowserMiddlewareStart``)."""

    def __init__(self, get_response):
        self.get_response = get_response
        # Django builds the chain from the last middleware to the first, in one thread: the start marker,
        # built next among the two, takes this handler's end.
        _pending_end.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


class BrowserMiddlewareStart:
    """Bearer-token calls (``bearer_call``) jump from here to ``BrowserMiddlewareEnd``, past the middleware
    listed between the two; every other request goes through them. What stays around them for every request:
    metrics, security headers, the request's audit context and the recording of unrecorded refusals, the NUL
    byte check, the session and language middleware (the language of error messages), X-Frame-Options and the
    database outage answer. Each middleware's ``process_view`` / ``process_exception`` hooks still run for
    every request (Django calls them outside this chain): CSRF's is a no-op on the API's exempt views."""

    def __init__(self, get_response):
        self.get_response = get_response
        end = getattr(_pending_end, "get_response", None)
        if end is None:
            raise ImproperlyConfigured("dpi.middleware.BrowserMiddlewareEnd must follow BrowserMiddlewareStart "
                                       "in MIDDLEWARE")
        _pending_end.get_response = None
        self.skip_to = end

    def __call__(self, request):
        if bearer_call(request):
            request.user = AnonymousUser()  # until the token authentication names the caller
            return self.skip_to(request)
        return self.get_response(request)
