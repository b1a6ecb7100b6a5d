"""``/metrics`` (Prometheus): requests and latencies by URL pattern, gate decisions by basis, audit chain queue
and lag, detection lag, task failures; open to the loopback interface or a bearer token, 404 for anyone else;
no patient id in any label."""

import pytest
from django.test import Client

from access.gate import authorize
from dpi import metrics

pytestmark = pytest.mark.django_db


def _scrape(**extra) -> tuple[int, str]:
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", **extra)
    return response.status_code, response.content.decode()


def test_metrics_count_requests_gate_decisions_and_database_gauges(cast):
    client = Client()
    client.force_login(cast.outsider)
    client.get(f"/patients/{cast.patient.pk}/")
    authorize(cast.nurse, patient_id=cast.patient.pk, category="medical", action="view")
    authorize(cast.other_physician, patient_id=cast.patient.pk, category="medical", action="view")
    metrics.task_failed("retention.tasks.archive_due")
    status, text = _scrape()
    assert status == 200
    assert 'dpi_gate_decisions_total{basis="care:encounter",outcome="allowed"}' in text
    assert 'dpi_gate_decisions_total{basis="deny:no_care_relationship",outcome="denied"}' in text
    assert 'dpi_http_requests_total{method="GET",route="patients/<id:patient_id>/",status=' in text
    assert "dpi_http_request_duration_seconds_bucket" in text
    assert "dpi_audit_chain_pending " in text and "dpi_audit_chain_lag_seconds " in text
    assert 'dpi_task_failures_total{task="retention.tasks.archive_due"}' in text
    assert "dpi_database_up 1.0" in text
    assert f"/{cast.patient.pk}/" not in text  # URL patterns, never the patient's id


def test_metrics_are_closed_to_other_addresses_unless_they_bring_the_token(settings):
    outside = Client(REMOTE_ADDR="10.20.30.40")
    assert outside.get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics", headers={"X-Forwarded-For": "10.20.30.40"}
                                              ).status_code == 404  # a local reverse proxy forwarding a visitor
    settings.DPI_METRICS_TOKEN = "scrape-token-for-tests"
    assert outside.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    response = outside.get("/metrics", headers={"Authorization": "Bearer scrape-token-for-tests"})
    assert response.status_code == 200 and b"dpi_http_requests_total" in response.content
