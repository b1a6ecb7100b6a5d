"""The chart page of a patient with a long record (issue #16): 2,000 results and 200 prescriptions, against the
chart of a typical inpatient (20 results, 5 prescriptions) in the same run.

In-process (Django's test client, signed in as a physician of the unit with a verified second factor), the
whole page: gate decisions and their audit events, banner, every section, entry forms. Reports p50/p95 and the
number of SQL queries of each page; the goal is a page that does not grow with the record (same queries, a
bounded time).
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta
from decimal import Decimal

ROUNDS = int(__import__("os").environ.get("DPI_BENCH_CHART_ROUNDS", "40"))


def main() -> str:
    import os

    from bench.common import setup_django

    os.environ.setdefault("DPI_STATIC_MANIFEST", "0")  # in-process: plain static names, no collectstatic needed
    setup_django("dpi_bench_chart")
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from access.models import StaffProfile
    from dpi.models import Observation, Prescription
    from patients import services as ps
    from patients.models import CareUnit

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    unit, _ = CareUnit.objects.get_or_create(code="bench-chart", defaults={"name": "Médecine (bench)"})
    user = User.objects.filter(username="bench.chart").first()
    if user is None:
        user = User.objects.create_user("bench.chart", first_name="Bench", last_name="Chart")
        StaffProfile.objects.create(user=user, role="physician").units.add(unit)
    device = TOTPDevice.objects.filter(user=user).first() or TOTPDevice.objects.create(user=user, name="b",
                                                                                         confirmed=True)
    now = timezone.now()

    def patient_with(results: int, prescriptions: int):
        p = ps.patient_create(birth_name="BENCH" + "ABCDEFGHIJ"[results % 10] + ("LONG" if results > 100 else ""), first_name="JEAN", sex="M",
                              birth_date=timezone.localdate() - timedelta(days=365 * 60))
        enc = ps.encounter_admit(patient=p, unit=unit, start=now - timedelta(days=30))
        Observation.objects.bulk_create([
            Observation(patient=p, author=user, encounter=enc, label=f"Analyte {i % 40}", loinc=f"{1000 + i % 40}-0",
                        value=Decimal(i % 97) / 10, unit="mmol/L", reference_low=Decimal(1),
                        reference_high=Decimal(8), effective_at=now - timedelta(minutes=15 * i))
            for i in range(results)])
        Prescription.objects.bulk_create([
            Prescription(patient=p, author=user, encounter=enc, medication=f"Médicament {i}", dose="1 cp",
                         route="oral", frequency="2 fois par jour", instructions="1 cp matin et soir",
                         start=timezone.localdate() - timedelta(days=i % 30))
            for i in range(prescriptions)])
        return p

    typical, heavy = patient_with(20, 5), patient_with(2000, 200)
    client = Client()
    client.force_login(user, backend="access.authn.backends.ThrottledModelBackend")
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()

    def page(pid: int) -> tuple[float, int]:
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = client.get(f"/patients/{pid}/")
            elapsed = time.perf_counter() - t0
        assert response.status_code == 200, response.status_code
        queries = len([q for q in ctx.captured_queries if "django_session" not in q["sql"]
                       and "SAVEPOINT" not in q["sql"]])
        return elapsed * 1000, queries

    for pid in (typical.pk, heavy.pk):  # warm-up
        page(pid)
    times = {typical.pk: [], heavy.pk: []}
    queries = {}
    order = [typical.pk, heavy.pk] * ROUNDS
    random.Random(7).shuffle(order)
    for pid in order:
        ms, q = page(pid)
        times[pid].append(ms)
        queries[pid] = q

    def p95(values):
        return statistics.quantiles(values, n=20)[18]

    t50, h50 = statistics.median(times[typical.pk]), statistics.median(times[heavy.pk])
    t95, h95 = p95(times[typical.pk]), p95(times[heavy.pk])
    return f"""## Chart page with a long record (issue #16)

Whole chart page in-process (gate + audit events, banner, every section, entry forms), {ROUNDS} requests per
patient interleaved at random, as a physician of the unit with a verified second factor.

| chart | p50 | p95 | SQL queries |
|---|---:|---:|---:|
| typical inpatient (20 results, 5 prescriptions) — baseline | {t50:.1f} ms | {t95:.1f} ms | {queries[typical.pk]} |
| long record (2,000 results, 200 prescriptions) | {h50:.1f} ms | {h95:.1f} ms | {queries[heavy.pk]} |
| ratio long / typical | {h50 / t50:.2f}x | {h95 / t95:.2f}x | {queries[heavy.pk] / queries[typical.pk]:.2f}x |

Every result stays reachable from the chart ("All results and their trends": pages of 50, a trend per analyte);
the chart itself shows the most recent ones, so its queries do not grow with the record.
"""


if __name__ == "__main__":
    print(main())
