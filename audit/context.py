"""Where an access comes from (channel, request id, address, user agent), carried in a context variable.

The web middleware sets it per request; workers and management commands use ``channel_context``.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
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
