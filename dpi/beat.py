"""Celery beat with a leader lease in Redis: several beats may run, one sends the periodic tasks.

Two beats that both send would run every periodic task twice per period. Deployments run one beat
(docs/deployment.md); this scheduler makes a second one (a standby on another host, or a replica started by
mistake) harmless: before each tick a beat takes or renews the lease ``<prefix>:beat:leader`` (``SET NX PX``,
renewed only by its owner, atomically), and a beat that does not hold it sends nothing. When the leader stops
(SIGTERM releases the lease; a crash lets it expire after ``DPI_BEAT_LEASE_SECONDS``) a standby takes over.

At a takeover a task may be sent once more than its period asks (the new leader's own clock of "last sent"
started when it did), so every periodic task is idempotent: it claims its work in the database (conditional
updates, ``SKIP LOCKED``, advisory locks, unique keys), and a second copy finds nothing to do.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from celery.beat import PersistentScheduler
from django.conf import settings

logger = logging.getLogger(__name__)

# Renew only if we still own the lease; a beat that lost it (paused past its TTL) must not extend another's.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def lease_key() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'dpi'}:beat:leader"


class LeaderLease:
    """A lease held by one owner at a time, in Redis (the broker: without it no task can be sent anyway)."""

    def __init__(self, client, key: str, seconds: int, owner: str | None = None):
        self.client = client
        self.key = key
        self.ttl_ms = int(seconds * 1000)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.renew = client.register_script(_RENEW)
        self.release_script = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Take the lease if free, renew it if ours; True when this owner holds it now."""
        if self.renew(keys=[self.key], args=[self.owner, self.ttl_ms]):
            return True
        return bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    def release(self) -> None:
        self.release_script(keys=[self.key], args=[self.owner])


class LeaderScheduler(PersistentScheduler):
    """``CELERY_BEAT_SCHEDULER``: the persistent (file) scheduler, ticking only while it holds the lease."""

    def __init__(self, *args, **kwargs):
        import redis

        seconds = settings.DPI_BEAT_LEASE_SECONDS
        self.lease = LeaderLease(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2,
                                                      socket_connect_timeout=2), lease_key(), seconds)
        # Renew well before expiry; a standby looks as often.
        self.lease_every = max(0.5, seconds / 3)
        self.leading = False
        super().__init__(*args, **kwargs)

    def _leads(self) -> bool:
        try:
            held = self.lease.hold()
        except Exception as exc:  # Redis unreachable: nothing could be sent anyway; try again shortly
            logger.warning("beat: leader lease unavailable: %s", type(exc).__name__)
            held = False
        if held != self.leading:
            logger.info("beat %s %s the leader lease", self.lease.owner, "took" if held else "lost")
            self.leading = held
        return held

    def tick(self, *args, **kwargs) -> float:
        if not self._leads():
            return self.lease_every
        return min(super().tick(*args, **kwargs), self.lease_every)

    def close(self) -> None:
        try:
            if self.leading:
                self.lease.release()  # a standby takes over at its next look, not after the TTL
        except Exception as exc:  # best effort: the lease expires by itself
            logger.warning("beat: could not release the leader lease: %s", type(exc).__name__)
        super().close()

