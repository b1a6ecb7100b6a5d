"""The audit connection is kept between requests (``CONN_MAX_AGE``) and the chart page writes its access events on
it (``audit.services.read_trace``). When PostgreSQL drops that kept connection (restart, failover, an idle timeout),
the next chart page is served on a new connection, as Django's health check does for any other query, instead of
failing with a 500."""

from __future__ import annotations

import pytest
from django.db import connections

from audit.models import AccessEvent
from tests.test_audit_support import sql
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_permission_cache(monkeypatch):
    import access.care_team

    monkeypatch.setattr(access.care_team, "_perm_id", None)  # permissions are recreated after each flush


def _drop_the_kept_audit_connection() -> None:
    audit = connections["audit"]
    audit.ensure_connection()
    pid = audit.connection.info.backend_pid
    sql("SELECT pg_terminate_backend(%s)", [pid])


def test_a_chart_page_after_the_audit_connection_was_dropped_is_served_and_recorded(cast, settings):
    client = verified_client(cast.physician)
    assert client.get(f"/patients/{cast.patient.pk}/").status_code == 200
    _drop_the_kept_audit_connection()
    before = AccessEvent.objects.filter(patient_id=cast.patient.pk, actor_id=cast.physician.pk).count()
    response = client.get(f"/patients/{cast.patient.pk}/")
    assert response.status_code == 200
    kinds = list(
        AccessEvent.objects.filter(patient_id=cast.patient.pk, actor_id=cast.physician.pk)
        .order_by("id")
        .values_list("resource_type", "outcome")[before:]
    )
    assert ("chart", "allowed") in kinds and ("patient", "allowed") in kinds


def test_every_chart_page_after_the_drop_is_served(cast):
    client = verified_client(cast.physician)
    client.raise_request_exception = False  # a 500 is an answer here
    assert client.get(f"/patients/{cast.patient.pk}/").status_code == 200
    _drop_the_kept_audit_connection()
    assert [client.get(f"/patients/{cast.patient.pk}/").status_code for _ in range(3)] == [200, 200, 200]
