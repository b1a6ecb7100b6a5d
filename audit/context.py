"""Where an access comes from (channel, request id, address, user agent), carried in a context variable.

The web middleware sets it per request; workers and management commands use ``channel_context``.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class AccessContext:
    channel: str = "worker"
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""


# AccessContext is a frozen dataclass: sharing the default instance is safe.
_current: contextvars.ContextVar[AccessContext] = contextvars.ContextVar(
    "dpi_access_context", default=AccessContext()  # noqa: B039
)


def current() -> AccessContext:
    return _current.get()


@contextmanager
def access_context(**changes: str | None) -> Iterator[AccessContext]:
    ctx = replace(_current.get(), **changes)
    if not ctx.request_id:
        ctx = replace(ctx, request_id=uuid.uuid4().hex)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def channel_context(channel: str) -> contextmanager:
    return access_context(channel=channel)


# Denied events recorded during the current request (a one-item list per request, set by the middleware), so
# that a refusal no view recorded itself (a 401 or 403 from a library, a decorator) still gets its event.
_denied: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("dpi_denied_events", default=None)


@contextmanager
def refusal_tracking() -> Iterator[list[int]]:
    seen = [0]
    token = _denied.set(seen)
    try:
        yield seen
    finally:
        _denied.reset(token)


def denied_noted() -> None:
    seen = _denied.get()
    if seen is not None:
        seen[0] += 1


def denied_count() -> int:
    """How many denied events the current request recorded so far (0 outside a request)."""
    seen = _denied.get()
    return seen[0] if seen is not None else 0


def client_address(request: Any) -> str | None:
    """The client's IP: REMOTE_ADDR, or the nearest untrusted X-Forwarded-For hop behind the reverse proxies and
    load balancers listed in ``DPI_TRUSTED_PROXIES`` (behind a load balancer REMOTE_ADDR is the balancer's)."""
    if request is None:
        return None
    remote = _valid_peer(request.META.get("REMOTE_ADDR", ""))
    trusted = settings.DPI_TRUSTED_PROXIES
    if remote is None or remote not in trusted:
        return remote
    forwarded = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(forwarded):
        ip = _valid_ip(hop)
        if ip is None:
            return remote
        if ip not in trusted:
            return ip
    return remote


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


# Every request parses its peer's address, and peers are few (the proxies, the hospital's systems): kept per
# process (issue #18). Only REMOTE_ADDR, which the client cannot choose; forwarded hops are parsed each time.
_valid_peer = functools.lru_cache(maxsize=256)(_valid_ip)


_PATIENT_REF = re.compile(r"(?:Patient/)?([1-9]\d{0,17})")


def asked_resource(request: Any) -> dict[str, Any]:
    """What a request asked for, read from its URL: the resource type and id its route names, and the patient
    when the route is a patient's or its ``patient`` (or FHIR ``subject``) parameter names one. For refusals
    made before a view decides (no or a wrong token, a missing session), so that their event names the file
    sought and not only the path."""
    django_request = getattr(request, "_request", request)
    match = getattr(django_request, "resolver_match", None)
    if match is None:
        try:
            from django.urls import Resolver404, resolve

            match = resolve(django_request.path_info)
        except (Resolver404, ValueError):
            match = None
    kwargs = match.kwargs if match is not None else {}
    func = getattr(match, "func", None)
    view_class = getattr(func, "view_class", None) or getattr(func, "cls", None)  # Django's views, DRF's viewsets
    rtype = str(kwargs.get("resource_type") or getattr(view_class, "resource_type", "") or "")
    pk = str(kwargs.get("pk") or "")[:64]
    if "patient_id" in kwargs:  # a page of a patient's file (/patients/<patient_id>/...)
        reference = str(kwargs["patient_id"])
    else:
        reference = pk if rtype.lower() == "patient" else ""
    found = _PATIENT_REF.fullmatch(reference[:80])
    patient = int(found.group(1)) if found else None
    if patient is None:
        query = getattr(django_request, "GET", {})
        for name in ("patient", "subject"):
            found = _PATIENT_REF.fullmatch(str(query.get(name, ""))[:80])
            if found:
                patient = int(found.group(1))
                break
    return {"resource_type": rtype[:40] or "page", "resource_id": pk or reference[:64], "patient_id": patient}
