"""Seed speed: 100,000 synthetic patients with their records (issue: foundation).

Baseline in the same run: the same generator writing row by row (``Model.save()`` per object instead of
``bulk_create``) for a sample, extrapolated to the same size.
"""

from __future__ import annotations

import os
import time

from bench.common import setup_django

N = int(os.environ.get("DPI_BENCH_SEED_PATIENTS", "100000"))
BASELINE_N = int(os.environ.get("DPI_BENCH_SEED_BASELINE", "500"))


def _fresh(db: str) -> None:
    import psycopg

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    from dpi import settings as s

    base = s.database_from_url(os.environ["DATABASE_URL"])
    kw = {
        k: v
        for k, v in {
            "user": base["USER"],
            "password": base["PASSWORD"],
            "host": base["HOST"],
            "port": base["PORT"],
        }.items()
        if v
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **kw) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _rows() -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("""SELECT (SELECT count(*) FROM patients_patient) + (SELECT count(*) FROM patients_encounter)
                       + (SELECT count(*) FROM dpi_clinicalnote) + (SELECT count(*) FROM dpi_observation)
                       + (SELECT count(*) FROM dpi_prescription) + (SELECT count(*) FROM dpi_allergy)
                       + (SELECT count(*) FROM dpi_problem)""")
        return cur.fetchone()[0]


def main() -> str:
    _fresh("dpi_bench_seed")
    setup_django("dpi_bench_seed")
    from django.db.models.query import QuerySet

    from dpi.seeding import seed

    t0 = time.perf_counter()
    seed(patients=N, seed=1)
    bulk_s = time.perf_counter() - t0
    bulk_rows = _rows()

    # Baseline: same generator, one INSERT per object.
    original = QuerySet.bulk_create

    def one_by_one(self, objs, batch_size=None, **kwargs):
        for obj in objs:
            obj.save(force_insert=True, using=self.db)
        return objs

    QuerySet.bulk_create = one_by_one
    try:
        before = _rows()
        t0 = time.perf_counter()
        seed(patients=BASELINE_N, seed=2)
        base_s = time.perf_counter() - t0
        base_rows = _rows() - before
    finally:
        QuerySet.bulk_create = original
    base_extrapolated = base_s * N / BASELINE_N
    return f"""## Seed: {N:,} synthetic patients

| method | patients | rows written | time | rows/s |
|---|---|---|---|---|
| `manage.py seed` (bulk inserts) | {N:,} | {bulk_rows:,} | **{bulk_s:.0f} s** ({bulk_s / 60:.1f} min) | {bulk_rows / bulk_s:,.0f} |
| baseline: same generator, one INSERT per row | {BASELINE_N:,} | {base_rows:,} | {base_s:.1f} s (≈ {base_extrapolated / 60:.0f} min for {N:,}) | {base_rows / base_s:,.0f} |

Goal: {N:,} patients with their records in under 5 minutes — {"met" if bulk_s < 300 else "NOT met"}.
Rows include patients, encounters, notes, observations, prescriptions, allergies and problems; every
note, identifier and free-text field is encrypted (AES-256-GCM) before insertion.
"""


if __name__ == "__main__":
    print(main())
