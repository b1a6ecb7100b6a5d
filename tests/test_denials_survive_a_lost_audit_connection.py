"""Refusals are written on the audit connection, kept between requests (``CONN_MAX_AGE``). When PostgreSQL dropped
that kept connection (restart, failover, an idle timeout), the next refusal is still recorded and answered as a
refusal (Django's health check, which the prepared statements' cursor does not run), not lost in a 500."""

from __future__ import annotations

import pytest
from django.db import close_old_connections, connections
from django.test import Client

from audit.models import AccessEvent
from tests.test_audit_support import sql

pytestmark = pytest.mark.django_db(transaction=True)


def _drop_the_kept_audit_connection() -> None:
    audit = connections["audit"]
    audit.ensure_connection()
    sql("SELECT pg_terminate_backend(%s)", [audit.connection.info.backend_pid])
    close_old_connections()  # what request_started does in a server (the test client leaves it out)


def test_a_bad_token_after_the_audit_connection_was_dropped_is_a_recorded_401():
    client = Client(raise_request_exception=False)
    bad = {"HTTP_AUTHORIZATION": "Bearer dpi_nothing_secret"}
    assert client.get("/api/patients/", **bad).status_code == 401
    _drop_the_kept_audit_connection()
    before = AccessEvent.objects.filter(basis="deny:bad_token").count()
    assert client.get("/api/patients/", **bad).status_code == 401
    assert AccessEvent.objects.filter(basis="deny:bad_token").count() == before + 1
