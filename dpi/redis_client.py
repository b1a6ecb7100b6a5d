"""One Redis client per process for the hot paths (API rate limit, credential cache generation).

Django's ``RedisCache`` builds a new ``redis.Redis`` object for every operation (about 170 response callbacks
registered each time) and spends two or three round trips on an ``add`` + ``incr``. The hot paths use this
client instead: the cache's own connection pool (same server, timeouts and key prefix), one client kept on the
cache backend object (so a test that swaps ``CACHES`` gets a new one), and server-side scripts that do their
work in one round trip.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.cache import caches
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Count one request in a fixed window (KEYS[1], expiring after ARGV[1] seconds) and read the credentials
# generation (KEYS[2], "0" while unset), in one round trip.
_COUNT_AND_GENERATION = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('GET', KEYS[2]) or '0'}
"""


def _backend() -> Any:
    return caches["default"]


def client(backend: Any = None) -> Any:
    """The process's Redis client for the default cache (thread-safe: a connection pool underneath)."""
    backend = backend or _backend()
    found = backend.__dict__.get("_dpi_redis")
    if found is None:
        raw = backend._cache  # django.core.cache.backends.redis.RedisCacheClient
        found = raw._client(connection_pool=raw._get_connection_pool(True))
        found._dpi_count = found.register_script(_COUNT_AND_GENERATION)
        found._dpi_lanes = threading.local()
        backend._dpi_redis = found
    return found


def key(name: str) -> str:
    """``name`` with the cache's key prefix and version, as ``cache.get(name)`` would store it."""
    return _backend().make_key(name)


def _packed(*args: bytes) -> bytes:
    """A command in the Redis protocol (an array of bulk strings), as redis-py's ``pack_command`` writes it
    for short arguments."""
    return b"*%d\r\n%b" % (len(args), b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args))


def _lane(found: Any) -> Any:
    """This thread's own connection for ``count_and_read``, taken from the pool once: the pool's per-call
    bookkeeping (lock, counters, a readiness poll of the socket, the release) was a third of the call's CPU."""
    lanes = found._dpi_lanes
    conn = getattr(lanes, "conn", None)
    if conn is None or lanes.pid != os.getpid():
        conn = found.connection_pool.make_connection()
        lanes.conn, lanes.pid = conn, os.getpid()
    return conn


def count_and_read(counter: str, expires: int, generation: str) -> tuple[int, int]:
    """INCR ``counter`` (setting its expiry on the first hit) and GET ``generation``: one round trip.
    Raises ``redis.exceptions.RedisError`` / ``OSError`` when Redis cannot be reached."""
    backend = _backend()
    found = client(backend)
    keys = [backend.make_key(counter), backend.make_key(generation)]
    script = found._dpi_count
    # Every API call sends this: straight through this thread's connection (send, read), which skips redis-py's
    # per-command wrapping (retry closure, observability hooks) and the pool's. Anything unusual (script not
    # loaded yet, a broken connection) takes the client's ordinary path, retries included.
    conn = _lane(found)
    try:
        conn.send_packed_command([_packed(b"EVALSHA", script.sha.encode(), b"2", keys[0].encode(),
                                          keys[1].encode(), str(expires).encode())], check_health=False)
        count, gen = conn.read_response()
    except NoScriptError:
        count, gen = script(keys=keys, args=[expires])  # loads the script
    except RedisTimeoutError:
        conn.disconnect()  # a half-read answer must not stay on the connection; no second wait
        raise
    except (RedisConnectionError, OSError):
        conn.disconnect()  # e.g. a connection Redis closed: the client's path reconnects and retries
        count, gen = script(keys=keys, args=[expires])
    return int(count), int(gen)
