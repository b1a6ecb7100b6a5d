"""HL7 v2 messages processed per second with the gate and the audit trail (dpi.hl7.receiver.receive: parse,
per-patient lock, services, gate system path, stored message and ACK) against parsing alone (header, segment
names checked against hl7apy's HL7 v2 tables, fields by position), in one run; over a real MLLP socket as well. And FHIR search latency (p50/p95) for the
search shapes hospital systems send, against the same filter as a bare ORM query.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from datetime import timedelta

from bench.common import setup_django

MESSAGES = int(os.environ.get("DPI_BENCH_HL7_MESSAGES", "300"))
SEARCHES = int(os.environ.get("DPI_BENCH_FHIR_SEARCHES", "200"))


def _feed(run: str, count: int) -> list[str]:
    """A realistic mix: per patient an admission, two result messages, a transfer and a discharge."""
    from django.utils import timezone

    from dpi.hl7 import testing as t

    day = (timezone.localdate() - timedelta(days=1)).strftime("%Y%m%d")
    messages: list[str] = []
    n = 0
    while len(messages) < count:
        ipp, visit = f"B{run}{n}", f"BV{run}{n}"
        family = "BENCH" + "".join(chr(65 + int(d)) for d in str(n))  # strict traits are letters only
        messages += [
            t.adt("A01", ipp, visit=visit, unit="bench-hl7-a", when=f"{day}080000", family=family),
            t.oru(
                ipp,
                [("2345-7", "Glucose", "NM", "5.4", "mmol/L", "3.9-6.1"), ("1988-5", "CRP", "NM", "3", "mg/L", "0-5")],
                visit=visit,
                when=f"{day}090000",
            ),
            t.adt("A02", ipp, visit=visit, unit="bench-hl7-b", when=f"{day}100000", family=family),
            t.oru(ipp, [("718-7", "Hémoglobine", "NM", "13.1", "g/dL", "12-16")], visit=visit, when=f"{day}110000"),
            t.adt("A03", ipp, visit=visit, when=f"{day}160000", family=family),
        ]
        n += 1
    return messages[:count]


def _rate(fn, messages: list[str]) -> tuple[float, list[float]]:
    times = []
    for message in messages:
        t0 = time.perf_counter()
        fn(message)
        times.append(time.perf_counter() - t0)
    return len(messages) / sum(times), times


def _hl7() -> str:
    from dpi.hl7 import testing as t
    from dpi.hl7.feed import patient_key
    from dpi.hl7.message import Reader, parse, parse_tree
    from dpi.hl7.mllp import serve
    from dpi.hl7.models import InboundMessage
    from dpi.hl7.receiver import receive
    from patients.models import CareUnit

    for code in ("bench-hl7-a", "bench-hl7-b"):
        CareUnit.objects.get_or_create(code=code, defaults={"name": code})
    run = uuid.uuid4().hex[:6]

    def parse_only(message: str) -> None:
        parsed = parse(message)
        patient_key(parsed, Reader(parsed.header))

    inproc = _feed(run + "i", MESSAGES)
    parse_rate, _ = _rate(parse_only, inproc)
    tree_rate, _ = _rate(parse_tree, inproc[: max(20, MESSAGES // 5)])
    full_rate, full_times = _rate(receive, inproc)
    accepted = InboundMessage.objects.filter(control_id__in=[m.split("|")[9] for m in inproc], ack_code="AA").count()
    assert accepted == len(inproc), f"only {accepted} of {len(inproc)} messages accepted: the figures would be wrong"

    server = serve("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = t.MllpClient(*server.server_address)
    wire = _feed(run + "w", MESSAGES)
    try:
        wire_rate, wire_times = _rate(client.send, wire)
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    p95 = statistics.quantiles(full_times, n=20)[18] * 1000
    wire_p95 = statistics.quantiles(wire_times, n=20)[18] * 1000
    return f"""## HL7 v2: messages per second

{MESSAGES} messages per variant (per patient: A01, ORU^R01 with 2 results, A02, ORU^R01, A03), one sender.

| variant | messages/s | p95 | ratio to parsing alone |
|---|---|---|---|
| parsing alone (header, hl7apy segment tables, fields by position) | {parse_rate:.0f} | | 1.00 |
| for reference: hl7apy's full element tree (`parse_message`), not used on the hot path | {tree_rate:.0f} | | {tree_rate / parse_rate:.3f} |
| processed in-process: parse, lock, services, gate + audit events, stored message, ACK | {full_rate:.0f} | {p95:.1f} ms | {full_rate / parse_rate:.2f} |
| over MLLP (TCP loopback, one connection, waiting for each ACK) | {wire_rate:.0f} | {wire_p95:.1f} ms | {wire_rate / parse_rate:.2f} |

{accepted} of the {MESSAGES} in-process messages were accepted (AA). Parsing is a negligible part of a message's
cost; the transaction is the rest: the services (and the care-team recomputation an encounter triggers), the
gate's access events (chained audit), the stored message and its acknowledgement. hl7apy's full element tree
would cost more than all of that, which is why segments are checked against its tables and fields read by
position.
"""


def _fhir() -> str:
    from django.test import Client
    from django.utils import timezone

    from dpi import services as clinical_services
    from dpi.api.testing import bearer, make_api_client
    from dpi.hl7.feed import feed_user
    from dpi.models import Observation
    from patients import services as patient_services
    from patients.models import Patient

    patient = Patient.objects.filter(birth_name="BENCHFHIR").first()
    if patient is None:
        patient = patient_services.patient_create(
            birth_name="BENCHFHIR", first_name="Alex", sex="U", birth_date="1970-06-15"
        )
        author = feed_user()
        start = timezone.now() - timedelta(days=400)
        for n in range(2000):
            clinical_services.observation_record(
                patient=patient,
                author=author,
                label="Glucose" if n % 2 else "CRP",
                loinc="2345-7" if n % 2 else "1988-5",
                value=str(4 + n % 5),
                effective_at=start + timedelta(hours=5 * n),
            )
    _, token = make_api_client(name=f"bench-fhir-{uuid.uuid4().hex[:8]}", rate_per_minute=10_000_000)
    http = Client()
    headers = bearer(token)
    year = (timezone.localdate() - timedelta(days=200)).strftime("%Y-%m")
    queries = {
        "Patient?birthdate=ge1970-01&birthdate=lt1971&family=bench": None,
        f"Observation?patient={patient.pk}&code=http://loinc.org|2345-7&_count=50": None,
        f"Observation?patient={patient.pk}&date=ge{year}&_sort=-date&_count=20": None,
        f"Observation?patient={patient.pk}&date=eq{year}&_summary=count": None,
        f"Observation?patient={patient.pk}&code=2345-7,1988-5&_count=20&_offset=1000": None,
    }
    bare = {
        0: lambda: list(Patient.objects.filter(birth_date__year=1970, birth_name__istartswith="bench")[:20]),
        1: lambda: list(Observation.objects.filter(patient=patient, loinc="2345-7").order_by("-pk")[:50]),
        2: lambda: list(Observation.objects.filter(patient=patient).order_by("-effective_at")[:20]),
        3: lambda: Observation.objects.filter(patient=patient).count(),
        4: lambda: list(Observation.objects.filter(patient=patient).order_by("-pk")[1000:1020]),
    }
    rows = []
    for n, query in enumerate(queries):
        assert http.get(f"/fhir/{query}", headers=headers).status_code == 200, query
        times, bare_times = [], []
        for _ in range(SEARCHES):
            t0 = time.perf_counter()
            response = http.get(f"/fhir/{query}", headers=headers)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            bare[n]()
            bare_times.append(time.perf_counter() - t0)
        assert response.status_code == 200
        p50, p95 = statistics.median(times) * 1000, statistics.quantiles(times, n=20)[18] * 1000
        b95 = statistics.quantiles(bare_times, n=20)[18] * 1000
        shown = query.replace(f"patient={patient.pk}&", "patient=<id>&").replace("|", "\\|")
        rows.append(f"| `{shown}` | {p50:.1f} ms | {p95:.1f} ms | {b95:.1f} ms |")
    table = "\n".join(rows)
    return f"""## FHIR search latency

{SEARCHES} runs of each search (one patient with 2,000 results), in-process through the whole stack (token,
scope, throttle, parsing, gate and its audit event, FHIR JSON with `total` and page links); the baseline is the
same filter as a bare ORM query (no HTTP, no gate, no JSON).

| search | p50 | p95 | bare ORM p95 |
|---|---|---|---|
{table}
"""


def main() -> str:
    setup_django(os.environ.get("DPI_BENCH_DB", "dpi_bench"))
    return _hl7() + "\n" + _fhir()


if __name__ == "__main__":
    print(main())
