"""CPU of each component of an audited ``GET /fhir/Patient/<id>`` (issue #18), measured one by one in this
process and in its PostgreSQL backend (/proc), N times each; the whole request in-process for comparison.

    python -m bench.profile_components [N]

Runs against the database of DATABASE_URL (seeded: ``manage.py seed``). Prints a Markdown table.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    import django

    django.setup()
    import psutil
    from django.db import connection
    from django.test import Client

    from access import gate
    from audit.services import event_record
    from dpi.api.authentication import ApiTokenAuthentication
    from dpi.api.testing import make_api_client
    from dpi.fhir import mapping
    from dpi.fhir.views import FhirJSONRenderer
    from patients.models import Patient
    from patients.selectors import patient_by_id, patient_reader

    n = int(argv[0]) if argv else 500
    api, token = make_api_client(name=f"profile-components-{int(time.time())}", rate_per_minute=10**9)
    ids = list(Patient.objects.filter(confidentiality="normal").values_list("pk", flat=True)[:100])
    http = Client()
    headers = {"Authorization": f"Bearer {token}"}
    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cur.fetchone()[0])

    def backend_cpu() -> float:
        t = backend.cpu_times()
        return t.user + t.system

    from django.test import RequestFactory
    from rest_framework.request import Request

    token_request = Request(RequestFactory().get("/fhir/Patient/1", HTTP_AUTHORIZATION=f"Bearer {token}"))

    user = api.user
    gate.mark_token_principal(user)
    gate.profile_of(user)
    patients = [patient_by_id(pk) for pk in ids]
    resource = mapping.patient_resource(patients[0])
    auth = ApiTokenAuthentication()
    parts = {
        "whole request in-process (`GET /fhir/Patient/<id>`, test client)":
            lambda i: http.get(f"/fhir/Patient/{ids[i % 100]}", headers=headers),
        "middleware stack alone (`/healthz`, test client)": lambda i: http.get("/healthz"),
        "token authentication (cached) + scope + rate limit (1 Redis round trip)":
            lambda i: auth.authenticate(token_request),
        "gate decision (facts query, prepared)":
            lambda i: gate.decide(user, patient_id=ids[i % 100], category="administrative", action="view"),
        "audit event INSERT + COMMIT (chain link at commit)":
            lambda i: event_record(actor=user, actor_role="integration", action="view", outcome="allowed",
                                   patient_id=ids[i % 100], category="administrative", resource_type="patient",
                                   resource_id=ids[i % 100], basis="role", details={"api_client": "x"}),
        "patient row by id (prepared) + decryption": lambda i: patient_by_id(ids[i % 100]),
        "what the read sends: decision + event + row in one statement (`gate.authorize_read`) + COMMIT":
            lambda i: gate.authorize_read(user, reader=patient_reader, patient_id=ids[i % 100],
                                          category="administrative", action="view", resource_type="patient",
                                          resource_id=ids[i % 100], details={"api_client": "x"}),
        "FHIR mapping": lambda i: mapping.patient_resource(patients[i % 100]),
        "JSON rendering": lambda i: FhirJSONRenderer().render(resource),
    }
    rows = []
    for name, fn in parts.items():
        for i in range(30):
            fn(i)
        c0, b0 = time.process_time(), backend_cpu()
        for i in range(n):
            fn(i)
        rows.append((name, (time.process_time() - c0) / n * 1000, (backend_cpu() - b0) / n * 1000))
    print(f"| component ({n} runs each) | Python CPU ms | PostgreSQL backend CPU ms |")
    print("|---|---:|---:|")
    for name, py, pg in rows:
        print(f"| {name} | {py:.2f} | {pg:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
