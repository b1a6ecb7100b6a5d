"""Where the server CPU of one request goes (issue #18): cProfile of requests served in-process through the
whole WSGI handler and middleware stack, with the SQL statements and Redis commands each request sends.

    python -m bench.profile_read [fhir|rest|chart|healthz] [N]

Runs against the database of DATABASE_URL (seeded: ``manage.py seed``), creating an API client on first use.
Prints the per-request CPU (process time), queries and Redis commands, then the top functions by cumulative
and by own time. Not a benchmark of ``make bench`` (no figure is written): a tool to find the cost.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from redis.connection import Connection

    from dpi.api.testing import make_api_client, verified_login
    from patients.models import Patient

    what = argv[0] if argv else "fhir"
    n = int(argv[1]) if len(argv) > 1 else 300
    _, token = make_api_client(name=f"profile-read-{int(time.time())}", rate_per_minute=10**9)
    ids = list(Patient.objects.filter(confidentiality="normal").values_list("pk", flat=True)[:100])
    http = Client()
    headers = {"Authorization": f"Bearer {token}"}
    if what == "chart":
        from django.contrib.auth.models import User

        from access.models import CareGrant

        grant = CareGrant.objects.filter(user__username="demo.nurse").first()
        verified_login(http, User.objects.get(username="demo.nurse"))
        ids, headers = [grant.content_object_id], {}
    paths = {"fhir": "/fhir/Patient/{}", "rest": "/api/patients/{}/", "chart": "/patients/{}/",
             "healthz": "/healthz"}
    path = paths[what]
    redis_calls = {"n": 0}
    original = Connection.send_packed_command

    def counting(self, command, check_health=True):
        redis_calls["n"] += 1
        return original(self, command, check_health)

    Connection.send_packed_command = counting
    for pid in ids[:20]:  # warm-up
        r = http.get(path.format(pid), headers=headers)
        assert r.status_code == 200, (r.status_code, r.content[:300])
    redis_calls["n"] = 0
    with CaptureQueriesContext(connection) as ctx:
        http.get(path.format(ids[1 % len(ids)]), headers=headers)
    print(f"{what}: {len(ctx.captured_queries)} SQL statements, {redis_calls['n']} Redis commands per request")
    for q in ctx.captured_queries:
        print("   ", q["sql"][:160])
    prof = cProfile.Profile()
    t0 = time.process_time()
    prof.enable()
    for i in range(n):
        http.get(path.format(ids[i % len(ids)]), headers=headers)
    prof.disable()
    cpu = (time.process_time() - t0) / n * 1000
    print(f"in-process CPU per request (with profiler overhead): {cpu:.2f} ms")
    t0 = time.process_time()
    for i in range(n):
        http.get(path.format(ids[i % len(ids)]), headers=headers)
    print(f"in-process CPU per request (no profiler): {(time.process_time() - t0) / n * 1000:.2f} ms")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(60)
    stats.sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
