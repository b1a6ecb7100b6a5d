"""Liveness, readiness and the answer given while a backing service is down.

``/healthz`` says the process runs (a load balancer or ``docker`` restarts it when it does not answer);
``/readyz`` says it can serve: PostgreSQL answers, Redis answers, the encryption keyring is loaded and works.
It answers 503 with the failing checks otherwise, so a load balancer stops sending users to an instance that
would only answer errors. Neither endpoint needs a session or reveals anything beyond which check failed.

During a database outage every page answers 503 with a short French message (``DatabaseOutageMiddleware``
for errors raised by views, ``server_error`` for errors raised earlier, e.g. while loading the session)
instead of a 500 page that suggests a bug.
"""

from __future__ import annotations

import logging
import sys

from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.defaults import server_error as django_server_error

logger = logging.getLogger(__name__)

OUTAGE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = "30"


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers (touches no backing service on purpose)."""
    return HttpResponse("ok", content_type="text/plain")


def _check_database() -> None:
    with connections["default"].cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


def _check_redis() -> None:
    # A round trip to the server (get of a missing key would also fail fast, but ping says what we mean).
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]  # Django's RedisCache client
    client.ping()


def _check_keyring() -> None:
    from dpi import crypto

    token = crypto.encrypt_text("readyz", aad="readyz")
    if crypto.decrypt_text(token, aad="readyz") != "readyz":
        raise crypto.KeyringError("round trip failed")


CHECKS = {"database": _check_database, "redis": _check_redis, "keyring": _check_keyring}


def readiness() -> dict[str, str]:
    """Each check's outcome: ``ok`` or the exception's class name (never its message: it may hold a URL)."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; logged once per probe
            logger.warning("readiness: %s unavailable: %s", name, type(exc).__name__)
            results[name] = type(exc).__name__
            if name == "database":
                connections["default"].close_if_unusable_or_obsolete()
        else:
            results[name] = "ok"
    return results


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    results = readiness()
    ready = all(value == "ok" for value in results.values())
    response = JsonResponse({"ready": ready, "checks": results}, status=200 if ready else 503)
    if not ready:
        response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def outage_response(request: HttpRequest) -> HttpResponse:
    """503 while the database is unreachable: JSON for the API, OperationOutcome for FHIR, plain text else."""
    message = _("The service is temporarily unavailable (the database cannot be reached). "
                "Try again in a few minutes; if it lasts, tell the IT support desk.")
    path = request.path
    if path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message}, status=503)
    elif path.startswith("/fhir/"):
        response = JsonResponse({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "transient", "diagnostics": message}]}, status=503,
            content_type="application/fhir+json")
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = RETRY_AFTER_SECONDS
    response["Cache-Control"] = "no-store"
    return response


class DatabaseOutageMiddleware:
    """A view that fails because PostgreSQL is unreachable answers 503, not 500 (last in MIDDLEWARE so that
    its ``process_exception`` runs first)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OUTAGE_ERRORS):
            logger.error("database unavailable on %s: %s", request.path, type(exception).__name__)
            from dpi import metrics

            metrics.outage_answered()
            return outage_response(request)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: errors raised before the view (session, authentication middleware) reach here."""
    exception = sys.exc_info()[1]
    if isinstance(exception, OUTAGE_ERRORS):
        from dpi import metrics

        metrics.outage_answered()
        return outage_response(request)
    return django_server_error(request)
