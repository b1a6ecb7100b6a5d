"""The page's idle lock: timing comes from the server's setting; locking ends the session on the server."""

from __future__ import annotations

import pytest
from django.test import Client

from dpi.web.context_processors import idle_warning_seconds
from tests.helpers import audit_events
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def test_pages_carry_the_server_idle_timeout(cast, settings):
    settings.DPI_SESSION_IDLE_SECONDS = 120
    html = verified_client(cast.nurse).get("/patients/").content.decode()
    assert '<meta name="dpi-idle-seconds" content="120">' in html
    assert f'<meta name="dpi-idle-warning-seconds" content="{idle_warning_seconds(120)}">' in html
    assert 'id="idle-warning"' in html and 'src="/static/dpi.js"' in html


def test_the_admin_site_locks_too(cast, settings):
    settings.DPI_SESSION_IDLE_SECONDS = 300
    html = verified_client(cast.reception).get("/admin/").content.decode()
    assert '<meta name="dpi-idle-seconds" content="300">' in html and 'id="idle-warning"' in html


def test_warning_comes_a_minute_before_or_a_third_of_a_short_timeout():
    assert idle_warning_seconds(900) == 60
    assert idle_warning_seconds(6) == 2


def test_locking_ends_the_session_on_the_server(cast):
    client = verified_client(cast.nurse)
    response = client.post("/session/lock/", {"next": f"/patients/{cast.patient.pk}/"})
    assert response.status_code == 302
    assert response["Location"] == f"/session/locked/?next=%2Fpatients%2F{cast.patient.pk}%2F"
    assert client.get(f"/patients/{cast.patient.pk}/").status_code == 302  # signed out
    assert audit_events(actor_id=cast.nurse.pk, action="logout")
    locked = client.get(response["Location"]).content.decode()
    assert f"/accounts/login/?next=%2Fpatients%2F{cast.patient.pk}%2F" in locked


def test_the_lock_never_redirects_elsewhere(cast):
    response = verified_client(cast.nurse).post("/session/lock/", {"next": "https://evil.example/"})
    assert response["Location"] == "/session/locked/"


def test_lock_answers_json_to_the_page_script(cast):
    response = verified_client(cast.nurse).post("/session/lock/", HTTP_ACCEPT="application/json")
    assert response.json() == {"locked": True}


def test_ping_keeps_the_server_clock_and_reports_expiry(cast):
    assert verified_client(cast.nurse).post("/session/ping/").status_code == 204
    assert Client().post("/session/ping/").status_code == 401
    assert verified_client(cast.nurse).get("/session/lock/").status_code == 405
