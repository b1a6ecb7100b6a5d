"""Beat's leader lease (dpi/beat.py): one holder at a time, renewed and released only by its owner, taken over
once the holder stops renewing it. (Two real beats sending once per period: test_ops_two_web_two_workers.py.)"""

import time
import uuid

import redis
from django.conf import settings

from dpi.beat import LeaderLease, lease_key


def _leases(seconds: float = 1):
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{lease_key()}:test:{uuid.uuid4().hex}"
    return client, key, LeaderLease(client, key, seconds, owner="beat-a"), LeaderLease(client, key, seconds,
                                                                                       owner="beat-b")


def test_one_holder_at_a_time_and_only_the_owner_renews_or_releases():
    client, key, a, b = _leases()
    try:
        assert a.hold() and not b.hold()
        assert a.hold()  # renewed
        b.release()  # not b's: nothing happens
        assert client.get(key) == b"beat-a" and not b.hold()
        a.release()
        assert b.hold() and not a.hold()
    finally:
        client.delete(key)


def test_a_standby_takes_over_when_the_leader_stops_renewing():
    client, key, a, b = _leases(seconds=0.3)
    try:
        assert a.hold() and not b.hold()
        time.sleep(0.5)  # the leader stalled (or died) past its lease
        assert b.hold()
        assert not a.hold()  # the old leader, back, is a standby now
    finally:
        client.delete(key)
