"""FHIR Patient reads per second through the full stack (token, scope, throttle, gate, audit event) against a
bare DRF endpoint reading and rendering the same rows without them, in one run (issue 8).

Every request goes through Django's whole middleware stack in-process (django.test.Client, no network), on
the benchmark database ``dpi_bench``. Three variants, interleaved in random order over the same patients:
- bare: a DRF view with no authentication, no gate, no audit; the same query and the same FHIR JSON;
- authenticated: the same bare view behind the API's token authentication, scope check and Redis throttle;
- FHIR: ``GET /fhir/Patient/<id>``, what hospital systems call (adds the gate and its audit event).
"""

from __future__ import annotations

import os
import random
import statistics
import time

from bench.common import setup_django

READS = int(os.environ.get("DPI_BENCH_API_READS", "1500"))
PATIENTS = 200

urlpatterns: list = []  # filled in main(): this module is the benchmark's URLconf


def _views():
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from dpi.api.common import ApiView
    from dpi.fhir import mapping
    from dpi.fhir.views import FhirContentNegotiation, FhirJSONRenderer
    from patients.models import Patient

    class Bare(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]
        throttle_classes: list = []
        renderer_classes = [FhirJSONRenderer]
        content_negotiation_class = FhirContentNegotiation

        def get(self, request, pk: int):
            return Response(mapping.patient_resource(Patient.objects.get(pk=pk)))

    class Authenticated(ApiView, Bare):
        authentication_classes = ApiView.authentication_classes
        permission_classes = ApiView.permission_classes
        throttle_classes = ApiView.throttle_classes
        renderer_classes = [FhirJSONRenderer]

        def required_scope(self, request):
            return "administrative:view"

    return Bare, Authenticated


def main() -> str:
    setup_django("dpi_bench")
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings
    from django.urls import include, path

    from audit.models import AccessEvent
    from dpi.api.testing import bearer, make_api_client
    from patients import services as patient_services
    from patients.models import Patient

    bare, authenticated = _views()
    urlpatterns[:] = [
        path("bench/bare/Patient/<int:pk>", bare.as_view()),
        path("bench/auth/Patient/<int:pk>", authenticated.as_view()),
        path("", include("dpi.urls")),
    ]
    ids = list(Patient.objects.filter(confidentiality="normal").order_by("pk").values_list("pk", flat=True)[:PATIENTS])
    for n in range(PATIENTS - len(ids)):
        ids.append(patient_services.patient_create(birth_name=f"BENCHAPI{n}", first_name="Alex", sex="U",
                                                   birth_date="1980-01-01").pk)
    _, token = make_api_client(name=f"bench-api-{int(time.time())}", rate_per_minute=10_000_000)
    headers = bearer(token)
    http = Client()
    urls = {"bare": "/bench/bare/Patient/{}", "authenticated": "/bench/auth/Patient/{}", "fhir": "/fhir/Patient/{}"}
    rng = random.Random(8)
    times: dict[str, list[float]] = {k: [] for k in urls}
    with override_settings(ROOT_URLCONF=__name__):
        for name, url in urls.items():  # warm up, and check every variant answers the same resource
            response = http.get(url.format(ids[0]), headers=headers)
            assert response.status_code == 200, (name, response.content)
        same = {name: http.get(url.format(ids[1]), headers=headers).json() for name, url in urls.items()}
        assert same["bare"] == same["authenticated"] == same["fhir"]
        events_before = AccessEvent.objects.count()
        for _ in range(READS):
            pid = ids[rng.randrange(len(ids))]
            for name in rng.sample(list(urls), len(urls)):
                t0 = time.perf_counter()
                response = http.get(urls[name].format(pid), headers=headers)
                times[name].append(time.perf_counter() - t0)
                assert response.status_code == 200
        events = AccessEvent.objects.count() - events_before
        queries = {}
        for name, url in urls.items():
            with CaptureQueriesContext(connection) as ctx:
                http.get(url.format(ids[2]), headers=headers)
            queries[name] = len(ctx.captured_queries)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p95 = {k: statistics.quantiles(v, n=20)[18] * 1000 for k, v in times.items()}
    rps = {k: len(v) / sum(v) for k, v in times.items()}
    rows = [("bare DRF view (no authentication, gate or audit)", "bare"),
            ("+ token, scope check, Redis throttle", "authenticated"),
            ("`GET /fhir/Patient/<id>` (+ gate and audit event)", "fhir")]
    table = "\n".join(
        f"| {label} | {rps[k]:.0f} | {med[k]:.2f} ms | {p95[k]:.2f} ms | {queries[k]} | {rps[k] / rps['bare']:.2f} |"
        for label, k in rows
    )
    return f"""## API: FHIR Patient reads per second

{READS:,} reads per variant of the same {len(ids)} patients, interleaved in random order, one client process
calling the Django app in-process (full middleware stack, no network), embedded PostgreSQL 16 and Redis on this
machine. Every variant returns the same FHIR JSON.

| variant | reads/s | median | p95 | queries | ratio to bare |
|---|---|---|---|---|---|
{table}

The gate and its audit event cost **{med["fhir"] - med["authenticated"]:.2f} ms** per read (median) on top of
authentication; the whole API layer costs {med["fhir"] - med["bare"]:.2f} ms. The FHIR reads left {events:,}
access events ({events / READS:.2f} per read: one, as required).
"""


if __name__ == "__main__":
    print(main())
