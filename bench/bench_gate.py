"""Cost of the gate on a by-id identity read and on a chart read at 100,000 seeded patients (issues 1, 13, 18).

Variants of each read, all interleaved in one run, each as the app runs it (autocommit, the by-id row through
the prepared reader ``patients.selectors.patient_reader``):
- bare: no check;
- check: ``gate.decide`` (the decision alone, including the identity-visibility rule of issue 13);
- gate: what the app does. By-id identity read (``GET /api/patients/<id>/``): ``gate.require_read``, the
  decision, its event and the row in one statement, committed before the row is used. Chart read (the chart
  page): ``gate.authorize_steps``, the medical record then the identity, both decisions, their events and the
  row in one statement, inside ``gate.read_trace``, whose COMMIT goes out while the chart's sections are read
  and is confirmed before the chart is released;
- for reference: the chart's two decisions as two statements (the page before), the chart's gate with its
  events in the read's own transaction (what the gate does inside a
  caller's ``atomic``: the WAL flush after the read), and the bare read plus one row in a plain table in one
  transaction (the cost of any durable write).
The identity read is one patient row, decrypted INS; the chart read is the patient + notes + observations +
prescriptions + allergies + problems, decrypted.
"""

from __future__ import annotations

import os
import random
import statistics
import time

from bench.common import setup_django

N_PATIENTS = int(os.environ.get("DPI_BENCH_PATIENTS", "100000"))
READS = int(os.environ.get("DPI_BENCH_GATE_READS", "1500"))
DB_NAME = os.environ.get("DPI_BENCH_GATE_DB", "dpi_bench_seed")  # reuses the patients written by bench_seed


def main() -> str:
    setup_django(DB_NAME)
    from django.db import connection, connections, transaction
    from django.test.utils import CaptureQueriesContext

    from access import gate
    from dpi.models import Allergy, ClinicalNote, Observation, Prescription, Problem
    from dpi.seeding import seed
    from patients.models import Encounter, Patient
    from patients.selectors import patient_reader

    have = Patient.objects.count()
    if have < N_PATIENTS:
        seed(patients=N_PATIENTS - have, seed=11)
    pairs = []
    for enc in Encounter.objects.filter(end__isnull=True).select_related("unit")[:400]:
        staff = enc.unit.staff.filter(role="physician").select_related("user").first()
        if staff:
            pairs.append((staff.user, enc.patient_id))
    rng = random.Random(1)

    def sections(pid: int) -> int:
        n = len(list(ClinicalNote.objects.filter(patient_id=pid)))
        n += len(list(Observation.objects.filter(patient_id=pid)))
        n += len(list(Prescription.objects.filter(patient_id=pid)))
        n += len(list(Allergy.objects.filter(patient_id=pid)))
        n += len(list(Problem.objects.filter(patient_id=pid)))
        return n

    def identity(p) -> int:
        return len(p.ins) + len(p.birth_name) + len(p.ipp)

    def id_bare(user, pid):
        identity(patient_reader.get(pid))

    def id_check(user, pid):
        assert gate.decide(user, patient_id=pid, category="administrative", action="view").allowed
        identity(patient_reader.get(pid))

    def id_gated(user, pid):
        _, p = gate.require_read(user, reader=patient_reader, patient_id=pid, category="administrative",
                                 action="view", resource_type="patient")
        identity(p)

    def bare(user, pid):
        p = patient_reader.get(pid)
        sections(pid)
        return len(p.ins)

    def check(user, pid):
        assert gate.decide(user, patient_id=pid, category="medical", action="view").allowed
        bare(user, pid)

    def chart_steps(pid):
        # What the chart page asks: the medical record, then the identity (with the patient row).
        return (gate.Step("medical", "view", "chart", pid), gate.Step("administrative", "view", "patient", pid))

    def gated(user, pid):
        with gate.read_trace() as trace:
            decisions, p = gate.authorize_steps(user, patient_id=pid, steps=chart_steps(pid), reader=patient_reader)
            assert decisions[-1].allowed
            trace.release()
            sections(pid)
            return len(p.ins)

    def gated_two(user, pid):
        # Reference: the page's two decisions as two statements (one round trip each), as before issue #18's
        # last round.
        with gate.read_trace() as trace:
            gate.require(user, patient_id=pid, category="medical", action="view", resource_type="chart",
                         resource_id=pid)
            _, p = gate.require_read(user, reader=patient_reader, patient_id=pid, category="administrative",
                                     action="view", resource_type="patient", resource_id=pid)
            trace.release()
            sections(pid)
            return len(p.ins)

    def in_transaction(user, pid):
        with transaction.atomic():
            decisions, p = gate.authorize_steps(user, patient_id=pid, steps=chart_steps(pid), reader=patient_reader)
            assert decisions[-1].allowed
            sections(pid)
            return len(p.ins)

    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_durable_write (id bigserial PRIMARY KEY, patient_id bigint)")

    def durable(user, pid):
        # Reference, not the app: the same read plus one row written to a plain table (no trigger, no chain),
        # in one transaction, i.e. the WAL flush at COMMIT that any durable write waits for.
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("INSERT INTO bench_durable_write (patient_id) VALUES (%s)", [pid])
            bare(user, pid)

    variants = {"bare": bare, "check": check, "gate": gated, "gate_two": gated_two, "in_tx": in_transaction,
                "durable": durable,
                "id_bare": id_bare, "id_check": id_check, "id_gate": id_gated}
    times = {k: [] for k in variants}
    for user, _ in pairs:
        gate.role_of(user)  # profile cached per user, as within a request
    for _ in range(READS):
        user, pid = pairs[rng.randrange(len(pairs))]
        for name in rng.sample(list(variants), len(variants)):
            t0 = time.perf_counter()
            variants[name](user, pid)
            times[name].append(time.perf_counter() - t0)
    queries = {}
    user, pid = pairs[0]
    for name, fn in variants.items():
        # Both connections: the trace's statements go through the audit one.
        with CaptureQueriesContext(connection) as ctx, CaptureQueriesContext(connections["audit"]) as actx:
            fn(user, pid)
        queries[name] = len([q for q in [*ctx.captured_queries, *actx.captured_queries]
                             if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "BEGIN"))])
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p95 = {k: statistics.quantiles(v, n=20)[18] * 1000 for k, v in times.items()}
    added_check = med["check"] - med["bare"]
    added_gate = med["gate"] - med["bare"]
    id_check = med["id_check"] - med["id_bare"]
    load = os.getloadavg()[0]
    return f"""## Gate cost on a by-id identity read and on a chart read ({Patient.objects.count():,} patients)

{READS:,} reads per variant, all {len(variants)} variants interleaved in random order, same users and patients
(physicians of the unit of an open encounter), PostgreSQL on this machine (shared with other work). The
decision includes the identity-visibility rule (restricted patients) and the provenance of care grants.
Load average at the end of the run: {load:.1f} on {os.cpu_count()} cores: with other work on the machine the
absolute times grow; the ratios, measured in the same interleaved run, are the figures to compare.

**By-id identity read** (what `GET /api/patients/<id>/` reads):

| variant | median | p95 | queries | ratio to bare |
|---|---|---|---|---|
| bare read (no check) | {med["id_bare"]:.2f} ms | {p95["id_bare"]:.2f} ms | {queries["id_bare"]} | 1.00 |
| + decision (`gate.decide`) | {med["id_check"]:.2f} ms | {p95["id_check"]:.2f} ms | {queries["id_check"]} | {med["id_check"] / med["id_bare"]:.2f} |
| + decision + audit event and the row in one statement (`gate.require_read`, what the API does) | {med["id_gate"]:.2f} ms | {p95["id_gate"]:.2f} ms | {queries["id_gate"]} | {med["id_gate"] / med["id_bare"]:.2f} |

The check adds {id_check:.2f} ms (median) and {queries["id_check"] - queries["id_bare"]} indexed query to the
identity read.

**Chart read:**

| variant | median | p95 | queries | ratio to bare |
|---|---|---|---|---|
| bare read (no check) | {med["bare"]:.2f} ms | {p95["bare"]:.2f} ms | {queries["bare"]} | 1.00 |
| + decision (`gate.decide`) | {med["check"]:.2f} ms | {p95["check"]:.2f} ms | {queries["check"]} | {med["check"] / med["bare"]:.2f} |
| + decisions + audit events (`gate.read_trace` + `gate.authorize_steps`: the record, then the identity, as the chart page asks) | {med["gate"]:.2f} ms | {p95["gate"]:.2f} ms | {queries["gate"]} | {med["gate"] / med["bare"]:.2f} |
| reference: the same two decisions as two statements (the chart page before this round) | {med["gate_two"]:.2f} ms | {p95["gate_two"]:.2f} ms | {queries["gate_two"]} | {med["gate_two"] / med["bare"]:.2f} |
| reference: the same gate, its events in the read's own transaction (flush after the read) | {med["in_tx"]:.2f} ms | {p95["in_tx"]:.2f} ms | {queries["in_tx"]} | {med["in_tx"] / med["bare"]:.2f} |
| reference: bare read + one row in a plain table (the WAL flush of any durable write) | {med["durable"]:.2f} ms | {p95["durable"]:.2f} ms | {queries["durable"]} | {med["durable"] / med["bare"]:.2f} |

The check adds **{added_check:.2f} ms** (median) and **{queries["check"] - queries["bare"]} indexed query**
(goal: under 2 ms and one query) — {"met" if added_check < 2 and queries["check"] - queries["bare"] == 1 else "NOT met"}.
With its audit events, the gate adds {added_gate:.2f} ms and {queries["gate"] - queries["bare"]} statement(s); goal at
most 1.15x the bare read's median: **{med["gate"] / med["bare"]:.3f}x**,
{"met" if med["gate"] / med["bare"] <= 1.15 else "NOT met"}. Any durable write of one row costs
{med["durable"] - med["bare"]:.2f} ms on this machine's disk (the reference line: PostgreSQL waits for the WAL
flush at COMMIT; a read-only transaction does not). The chart page's trace is durable before the chart leaves,
as in the read's own transaction ({med["in_tx"] / med["bare"]:.2f}x), but its flush runs while the sections are
read instead of after them. Statements counted on both connections (the trace's commit is the pipeline's Sync
message, not a statement).
"""


if __name__ == "__main__":
    print(main())
