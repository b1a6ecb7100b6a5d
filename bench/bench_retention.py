"""Retention: patients archived per minute with 100,000 seeded patients, against a plain export of the same rows.

Seeds 100,000 synthetic patients once into ``dpi_bench_retention`` (kept between runs), ages the last activity of
a sample of live patients so that their live period has ended, then measures in the same run:
- the set-based selection of due patients over the whole table;
- a baseline: reading the same records (ORM, live columns decrypted) and writing them as plain JSON files, no
  encryption, no fsync, no verification, nothing removed;
- the archive run: export (encrypt, fsync), verify (read back, checksum, decrypt), remove (one transaction per
  batch), finish; every step audited;
- restoring part of the sample (re-insert, re-encrypt with the live key), which also puts them back for the
  next run.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import setup_django

PATIENTS = 100_000
SAMPLE = 2_000
RESTORE_SAMPLE = 200
BATCH = 100


def _seed_once() -> int:
    from dpi.seeding import seed
    from patients.models import Patient
    from retention.models import ArchivedPatient

    present = Patient.objects.count() + ArchivedPatient.objects.filter(state="archived").count()
    if present == 0:
        seed(patients=PATIENTS, seed=1)
        present = PATIENTS
    return present


def _sample(n: int) -> list[int]:
    from django.db import connection

    with connection.cursor() as cur:
        # Live patients no protected reference holds (open rights requests stay live by design).
        cur.execute("""SELECT p.id FROM patients_patient p
                       WHERE NOT EXISTS (SELECT 1 FROM compliance_rightsrequest r WHERE r.patient_id = p.id)
                       ORDER BY p.id""")
        ids = [r[0] for r in cur.fetchall()]
    return sorted(random.Random(len(ids)).sample(ids, min(n, len(ids))))


def _baseline(pids: list[int], out: Path) -> float:
    from retention import record

    t0 = time.perf_counter()
    for i in range(0, len(pids), BATCH):
        chunk = pids[i:i + BATCH]
        records = record.records_read(chunk)
        for pid in chunk:
            (out / f"{pid}.json").write_text(json.dumps(records[pid], cls=record.RecordJSONEncoder))
    return time.perf_counter() - t0


def main() -> str:
    setup_django("dpi_bench_retention")
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from audit.context import access_context
    from dpi.crypto import keyring
    from patients.models import Patient
    from retention import archiving, services
    from retention.models import ArchivedPatient, ArchiveJob, RestoreRequest
    from retention.testing import age, where_is

    keyring()
    seeded = _seed_once()
    live_before = Patient.objects.count()
    work = Path(tempfile.mkdtemp(prefix="dpi-bench-retention-"))
    settings.DPI_ARCHIVE_DIR = work / "archive"
    plain = work / "plain"
    plain.mkdir()
    try:
        # Only the sample is due: records that aged past their live period since the seed (or were restored
        # by an earlier run) are given a recent activity first, so the baseline and the run see the same rows.
        already_due = services.due_patient_ids(today=timezone.localdate())
        age(already_due, last_activity=timezone.now() - timedelta(days=365))
        pids = _sample(SAMPLE)
        age(pids, last_activity=timezone.now() - timedelta(days=365 * 6))
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM dpi_clinicalnote WHERE patient_id = ANY(%s)", [pids])
            notes = cur.fetchone()[0]

        t0 = time.perf_counter()
        due = services.due_patient_ids(today=timezone.localdate())
        select_s = time.perf_counter() - t0
        assert set(due) == set(pids), "exactly the aged sample must be due"

        baseline_s = _baseline(pids, plain)

        step_times: dict[str, float] = {}
        steps = []
        for state, fn in archiving.STEPS:
            def timed(ids, fn=fn):
                t = time.perf_counter()
                try:
                    return fn(ids)
                finally:
                    step_times[fn.__name__] = step_times.get(fn.__name__, 0.0) + time.perf_counter() - t
            steps.append((state, timed))
        original_steps = archiving.STEPS
        archiving.STEPS = tuple(steps)
        try:
            with access_context(channel="worker"):
                t0 = time.perf_counter()
                run = services.retention_run(batch=BATCH)
                archive_s = time.perf_counter() - t0
        finally:
            archiving.STEPS = original_steps
        archived = [pid for pid in pids if ArchivedPatient.objects.filter(patient_id=pid, state="archived").exists()]
        assert run.errors == 0 and len(archived) == len(pids), (run.errors, len(archived))
        checked = random.Random(1).sample(pids, 20)
        assert all(where_is(pid) == {"archived"} for pid in checked)
        archive_bytes = sum(p.stat().st_size for p in (work / "archive").rglob("*.dpa"))
        plain_bytes = sum(p.stat().st_size for p in plain.glob("*.json"))

        # Restore: put a part of the sample back (the rest was archived, as in real life).
        from django.contrib.auth.models import User

        dim = User.objects.get(username="demo.dim")
        approver = User.objects.get(username="demo.dpo")
        restore_ids = pids[:RESTORE_SAMPLE]
        with access_context(channel="worker"):
            t0 = time.perf_counter()
            for pid in restore_ids:
                req = services.restore_request_create(user=dim, patient_id=pid, reason="benchmark restore (synthetic)")
                services.restore_request_approve(user=approver, request_id=req.pk)
            restore_s = time.perf_counter() - t0
        assert Patient.objects.filter(pk__in=restore_ids).count() == len(restore_ids)
        # Restored records stay live; archived ones stay archived. Clear the bench's bookkeeping rows.
        RestoreRequest.objects.filter(patient_id__in=restore_ids).delete()
        ArchiveJob.objects.filter(patient_id__in=restore_ids).delete()
        live_after = Patient.objects.count()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(pids)
    rate = n / archive_s * 60
    base_rate = n / baseline_s * 60
    lines = [
        "## Retention: archiving",
        "",
        f"{seeded:,} seeded patients ({live_before:,} live before this run), sample of {n:,} patients aged past "
        f"their live period ({notes:,} clinical notes); batches of {BATCH}.",
        "",
        "| measure | time | rate |",
        "|---|---|---|",
        f"| select due patients (one SQL over all live patients) | {select_s * 1000:.0f} ms | {len(due):,} due |",
        f"| **baseline**: read the same records + plain JSON files | {baseline_s:.1f} s | "
        f"{base_rate:,.0f} patients/min |",
        f"| **archive run**: export + verify + remove + finish | {archive_s:.1f} s | **{rate:,.0f} patients/min** |",
        *[f"| &nbsp;&nbsp;{name.replace('step_', '')} | {secs:.1f} s | |" for name, secs in step_times.items()],
        f"| restore (request + approve + re-insert), {len(restore_ids)} patients | {restore_s:.1f} s | "
        f"{len(restore_ids) / restore_s * 60:,.0f} patients/min |",
        "",
        f"Archive run / baseline: {archive_s / baseline_s:.1f}x the time of a plain export. Archive files "
        f"{archive_bytes / n / 1024:.1f} KiB per patient (compressed, encrypted) vs {plain_bytes / n / 1024:.1f} KiB "
        f"plain JSON. Live patients after the run: {live_after:,}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
