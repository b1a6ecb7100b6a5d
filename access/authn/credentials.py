"""The credentials generation: a counter in Redis that moves whenever something a verified credential stands
for changes (an account enabled or disabled, a role, units or contract dates, an API client or token issued,
narrowed or revoked).

Caches of verified credentials (``dpi.api.authentication``) keep an entry only while the counter has the value
it had when the entry was read from the database, and check it on every request in the round trip they make
to Redis anyway (the rate limit). A revocation therefore applies to the next request on every worker and every
machine sharing the Redis server. The counter moves twice: at once (so that no worker keeps using an entry while
the change commits) and after the commit (so that an entry read from the database just before the commit, with
the new value, is dropped too). Without Redis, nothing is cached (every request reads the database).
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def generation_key() -> str:
    # Several databases may share one Redis (tests, staging): one counter per database.
    return f"credentials-generation:{connection.settings_dict['NAME']}"


def current_generation() -> int:
    """The counter's value (0 while unset). Raises RedisError / OSError when Redis cannot be reached."""
    from dpi import redis_client

    value = redis_client.client().get(redis_client.key(generation_key()))
    return int(value or 0)


def _bump() -> None:
    from dpi import redis_client

    try:
        redis_client.client().incr(redis_client.key(generation_key()))
    except (RedisError, OSError) as exc:
        # Cached credentials then live at most their lifetime (dpi.api.authentication.CACHE_SECONDS).
        logger.error("credentials generation not moved (Redis unavailable: %s)", type(exc).__name__)


def credentials_changed() -> None:
    """Call on any change of who an account or credential is or may do (in or outside a transaction)."""
    _bump()
    transaction.on_commit(_bump)
