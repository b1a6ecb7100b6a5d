"""Rate limit per API client (or per signed-in user): a counter per minute in the Redis cache.

A fixed one-minute window counted with ``INCR`` (one Redis round trip, a server-side script that also sets the
key's expiry) whatever the rate, where DRF's default throttle stores (and re-pickles) the timestamp of every
request of the last minute. A token call whose credential came from the cache was already counted in the round
trip that checked the cache (dpi.api.authentication): no second one.

Redis outage: the limit degrades to a counter in this process (``LocalWindow``), with a logged warning, instead
of answering 500 to every hospital system. A client then gets at most the limit per process (divided by
``DPI_API_RATE_LOCAL_DIVISOR`` when set to the number of web workers). Sign-in attempt limits do not use Redis at
all: they stay in PostgreSQL and fail closed (access.authn.throttle).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from dpi import metrics, redis_client
from dpi.api.authentication import RATE_KEY_SECONDS, RATE_WINDOW_SECONDS, principal_of, rate_key, rate_window

logger = logging.getLogger(__name__)

WINDOW_SECONDS = RATE_WINDOW_SECONDS
WARN_EVERY_SECONDS = 60


class LocalWindow:
    """Fixed one-minute windows counted in this process's memory (the fallback while Redis is down)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._window = -1
        self._warned_at = 0.0

    def incr(self, key: str, window: int) -> int:
        with self._lock:
            if window != self._window:  # a new minute: forget the previous one
                self._counts.clear()
                self._window = window
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def warn(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned_at < WARN_EVERY_SECONDS and self._warned_at:
                return
            self._warned_at = now
        logger.warning("API rate limit: Redis unavailable (%s), counting in this process", type(exc).__name__)


local_window = LocalWindow()


def _redis_count(key: str) -> int:
    count, _ = redis_client.count_and_read(key, RATE_KEY_SECONDS, "unused")
    return count


class ApiRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        principal = principal_of(request)
        limit = settings.DPI_API_RATE_PER_MINUTE
        if principal is not None:
            ident = f"client:{principal.client.uid}"
            limit = principal.client.rate_per_minute or limit
        elif request.user and request.user.is_authenticated:
            # Several databases may share one Redis (tests, staging): keep their counters apart.
            ident = f"user:{connection.settings_dict['NAME']}:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        now = time.time()
        window = rate_window(now)
        key = rate_key(ident, window)
        try:
            if principal is not None and principal.rate is not None and principal.rate[1] == window:
                count = principal.rate[0]  # counted with the credential check
            else:
                count = _redis_count(key)
        except (RedisError, OSError) as exc:
            local_window.warn(exc)
            metrics.RATE_LIMIT_DEGRADED.inc()
            count = local_window.incr(key, window)
            limit = max(1, limit // settings.DPI_API_RATE_LOCAL_DIVISOR)
        self._wait = (window + 1) * WINDOW_SECONDS - now
        return count <= limit

    def wait(self) -> float:
        return max(1.0, self._wait)
