"""Rate limit per API client (or per signed-in user): a counter per minute in the Redis cache.

A fixed one-minute window counted with ``INCR`` costs two Redis round trips whatever the rate, where DRF's
default throttle stores (and re-pickles) the timestamp of every request of the last minute.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.throttling import BaseThrottle

from dpi.api.authentication import principal_of

WINDOW_SECONDS = 60


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
        window = int(now // WINDOW_SECONDS)
        key = f"api-rate:{ident}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.add(key, 1, timeout=WINDOW_SECONDS + 5)
            count = 1
        self._wait = (window + 1) * WINDOW_SECONDS - now
        return count <= limit

    def wait(self) -> float:
        return max(1.0, self._wait)
