"""Cost of the gate on a chart read at 100,000 seeded patients (issue: care-team authorization).

Three variants of the same chart read (patient + notes + observations + prescriptions + allergies +
problems, decrypted), interleaved in one run:
- bare: no check;
- check: ``gate.decide`` (the decision alone);
- gate: ``gate.authorize`` (decision + audit event in the same transaction), what the app does.
"""

from __future__ import annotations

import os
import random
import statistics
import time

from bench.common import setup_django

N_PATIENTS = int(os.environ.get("DPI_BENCH_PATIENTS", "100000"))
READS = int(os.environ.get("DPI_BENCH_GATE_READS", "1500"))


def main() -> str:
    setup_django("dpi_bench_seed")  # reuses the 100,000 patients written by bench_seed
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from access import gate
    from dpi.models import Allergy, ClinicalNote, Observation, Prescription, Problem
    from dpi.seeding import seed
    from patients.models import Encounter, Patient

    have = Patient.objects.count()
    if have < N_PATIENTS:
        seed(patients=N_PATIENTS - have, seed=11)
    pairs = []
    for enc in Encounter.objects.filter(end__isnull=True).select_related("unit")[:400]:
        staff = enc.unit.staff.filter(role="physician").select_related("user").first()
        if staff:
            pairs.append((staff.user, enc.patient_id))
    rng = random.Random(1)

    def chart(pid: int) -> int:
        p = Patient.objects.get(pk=pid)
        n = len(list(ClinicalNote.objects.filter(patient_id=pid)))
        n += len(list(Observation.objects.filter(patient_id=pid)))
        n += len(list(Prescription.objects.filter(patient_id=pid)))
        n += len(list(Allergy.objects.filter(patient_id=pid)))
        n += len(list(Problem.objects.filter(patient_id=pid)))
        return n + len(p.ins)

    def bare(user, pid):
        with transaction.atomic():
            chart(pid)

    def check(user, pid):
        with transaction.atomic():
            assert gate.decide(user, patient_id=pid, category="medical", action="view").allowed
            chart(pid)

    def gated(user, pid):
        with transaction.atomic():
            gate.require(user, patient_id=pid, category="medical", action="view", resource_type="chart")
            chart(pid)

    variants = {"bare": bare, "check": check, "gate": gated}
    times = {k: [] for k in variants}
    for user, _ in pairs:
        gate.role_of(user)  # profile cached per user, as within a request
    for _ in range(READS):
        user, pid = pairs[rng.randrange(len(pairs))]
        for name in rng.sample(list(variants), 3):
            t0 = time.perf_counter()
            variants[name](user, pid)
            times[name].append(time.perf_counter() - t0)
    queries = {}
    user, pid = pairs[0]
    for name, fn in variants.items():
        with CaptureQueriesContext(connection) as ctx:
            fn(user, pid)
        queries[name] = len([q for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))])
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p95 = {k: statistics.quantiles(v, n=20)[18] * 1000 for k, v in times.items()}
    added_check = med["check"] - med["bare"]
    added_gate = med["gate"] - med["bare"]
    return f"""## Gate cost on a chart read ({Patient.objects.count():,} patients)

{READS:,} chart reads per variant, interleaved in random order, same users and patients (physicians of the
unit of an open encounter), embedded PostgreSQL 16 on this machine.

| variant | median | p95 | queries | ratio to bare |
|---|---|---|---|---|
| bare read (no check) | {med["bare"]:.2f} ms | {p95["bare"]:.2f} ms | {queries["bare"]} | 1.00 |
| + decision (`gate.decide`) | {med["check"]:.2f} ms | {p95["check"]:.2f} ms | {queries["check"]} | {med["check"] / med["bare"]:.2f} |
| + decision + audit event (`gate.require`, what the app does) | {med["gate"]:.2f} ms | {p95["gate"]:.2f} ms | {queries["gate"]} | {med["gate"] / med["bare"]:.2f} |

The check adds **{added_check:.2f} ms** (median) and **{queries["check"] - queries["bare"]} indexed query**
(goal: under 2 ms and one query) — {"met" if added_check < 2 and queries["check"] - queries["bare"] == 1 else "NOT met"}.
With its audit event, the gate adds {added_gate:.2f} ms and {queries["gate"] - queries["bare"]} queries.
"""


if __name__ == "__main__":
    print(main())
