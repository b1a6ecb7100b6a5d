"""Server time of the browser pages on seeded data (issue: the browser UI; goal: no page over 300 ms).

Each page is requested through the whole Django stack (middleware, gate, audit writes, templates) with the
test client, as the demo accounts the seed creates (physician, reception, DPO), interleaved in one run.
Baseline: ``/healthz``, the smallest request through the same stack, measured in the same run.
"""

from __future__ import annotations

import os
import random
import statistics
import time

from bench.common import setup_django

N_PATIENTS = int(os.environ.get("DPI_BENCH_UI_PATIENTS", "300"))  # `make run` seeds 300 demo patients
ROUNDS = int(os.environ.get("DPI_BENCH_UI_ROUNDS", "40"))
GOAL_MS = 300


def _client(user):
    from django.conf import settings
    from django.contrib.auth.backends import ModelBackend
    from django.test import Client
    from django.utils.module_loading import import_string
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    backend = next(p for p in settings.AUTHENTICATION_BACKENDS if issubclass(import_string(p), ModelBackend))
    client = Client()
    client.force_login(user, backend=backend)
    session = client.session
    device = TOTPDevice.objects.filter(user=user).first()
    if device is not None:
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def main() -> str:
    setup_django("dpi_bench")
    from django.contrib.auth.models import User

    from dpi.models import ClinicalNote
    from dpi.seeding import seed
    from patients.models import Encounter, Patient

    have = Patient.objects.count()
    if have < N_PATIENTS:
        seed(patients=N_PATIENTS - have, seed=11)
    if not User.objects.filter(username="demo.physician").exists():
        seed(patients=1, seed=11)
    physician = User.objects.get(username="demo.physician")
    reception = User.objects.get(username="demo.reception")
    dpo = User.objects.get(username="demo.dpo")
    patient_ids = list(Encounter.objects.filter(end__isnull=True, unit__code="cardio")
                       .values_list("patient_id", flat=True)[:50])
    note = ClinicalNote.objects.filter(patient_id__in=patient_ids, sensitive=False).first()
    name = Patient.objects.filter(pk__in=patient_ids).values_list("birth_name", flat=True).first() or "a"
    clients = {"physician": _client(physician), "reception": _client(reception), "dpo": _client(dpo)}
    rng = random.Random(7)
    pages = {
        "baseline: /healthz": ("physician", lambda: "/healthz"),
        "patient list (care team)": ("physician", lambda: "/patients/"),
        "patient search by name": ("physician", lambda: f"/patients/?q={name[:3]}"),
        "chart": ("physician", lambda: f"/patients/{rng.choice(patient_ids)}/"),
        "note with history": ("physician", lambda: f"/patients/{note.patient_id}/notes/{note.pk}/"),
        "DPO dashboard": ("dpo", lambda: "/dpo/"),
        "DPO access log (one user)": ("dpo", lambda: "/dpo/access-log/?user=demo.physician"),
        "DPO alert queue": ("dpo", lambda: "/dpo/queue/"),
        "reception: patient list": ("reception", lambda: "/admin/patients/patient/"),
        "reception: one patient": ("reception", lambda: f"/admin/patients/patient/{rng.choice(patient_ids)}/change/"),
    }
    times: dict[str, list[float]] = {k: [] for k in pages}
    for name_, (who, url) in pages.items():  # warm-up (templates, caches, connections)
        response = clients[who].get(url())
        assert response.status_code == 200, (name_, response.status_code)
    for _ in range(ROUNDS):
        for name_ in rng.sample(list(pages), len(pages)):
            who, url = pages[name_]
            t0 = time.perf_counter()
            clients[who].get(url())
            times[name_].append(time.perf_counter() - t0)

    def ms(values: list[float], q: float) -> float:
        return 1000 * statistics.quantiles(values, n=100)[int(q) - 1] if q < 100 else 1000 * max(values)

    worst = max(ms(v, 95) for k, v in times.items() if not k.startswith("baseline"))
    lines = [
        "## Browser pages: server time (`bench/bench_ui.py`)",
        "",
        f"{Patient.objects.count():,} seeded patients; {ROUNDS} requests per page, interleaved, through the whole "
        "Django stack (middleware, gate and audit writes, templates) with the test client.",
        "",
        "| page | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for k, v in times.items():
        lines.append(f"| {k} | {ms(v, 50):.1f} | {ms(v, 95):.1f} | {ms(v, 100):.1f} |")
    lines += ["", f"Goal: every page under {GOAL_MS} ms. Slowest page at p95: **{worst:.0f} ms** "
              f"({'met' if worst < GOAL_MS else 'NOT met'})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
