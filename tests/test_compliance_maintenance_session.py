"""Inside its window a maintenance session works and every request lands in the logbook (who, when, what,
approved by); when the window ends the session ends. The DPO, and only the DPO, reads the logbook."""

from datetime import timedelta

import pytest
from django.utils import timezone

from access.policy import Role
from dpi.compliance.models import MaintenanceLogEntry, MaintenanceWindow
from dpi.compliance.services import maintenance_window_approve
from tests.helpers import audit_events
from tests.personas import make_user
from tests.test_compliance_support import verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(db):
    return make_user("maint.vendor", Role.MAINTENANCE)


@pytest.fixture
def open_window(provider):
    now = timezone.now()
    return maintenance_window_approve(provider=provider, starts_at=now - timedelta(minutes=5),
                                      ends_at=now + timedelta(hours=2), purpose="disk replacement",
                                      approved_by=make_user("rssi", Role.SECURITY_OFFICER))


def test_every_request_is_logged_with_its_approval(client, provider, open_window):
    verified_login(client, provider)
    response = client.get("/compliance/maintenance/status")
    assert response.status_code == 200
    body = response.json()
    assert {"database", "pending_migrations", "backups", "keyring"} <= set(body)
    entry = MaintenanceLogEntry.objects.filter(actor_id=provider.pk, window=open_window).latest("id")
    assert entry.what == "GET /compliance/maintenance/status"
    assert entry.approved_by_username == "rssi" and entry.details["status"] == 200


def test_the_provider_notes_an_intervention(client, provider, open_window):
    verified_login(client, provider)
    response = client.post("/compliance/maintenance/log", {"what": "replaced disk sdb, RAID rebuilt"},
                           content_type="application/json")
    assert response.status_code == 201
    assert MaintenanceLogEntry.objects.get(pk=response.json()["id"]).what == "replaced disk sdb, RAID rebuilt"


def test_the_session_ends_with_the_window(client, provider, open_window):
    verified_login(client, provider)
    assert client.get("/compliance/maintenance/status").status_code == 200
    MaintenanceWindow.objects.filter(pk=open_window.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/compliance/maintenance/status").status_code == 403
    assert "_auth_user_id" not in client.session  # signed out
    (event,) = audit_events(actor_id=provider.pk, basis="deny:maintenance_window")
    assert event.details["step"] == "session"


def test_only_the_dpo_reads_the_logbook(client, cast, provider, open_window):
    verified_login(client, provider)
    client.get("/compliance/maintenance/status")
    assert client.get("/compliance/maintenance/log").status_code == 403
    client.logout()
    for other in (cast.physician, cast.reception, cast.outsider):
        verified_login(client, other)
        assert client.get("/compliance/maintenance/log").status_code == 403
        client.logout()
    verified_login(client, cast.dpo)
    response = client.get("/compliance/maintenance/log")
    assert response.status_code == 200
    entries = response.json()["entries"]
    assert any(e["who"] == "maint.vendor" and e["what"] == "GET /compliance/maintenance/status"
               and e["approved_by"] == "rssi" and e["window_purpose"] == "disk replacement" for e in entries)
    assert response.json()["windows"][0]["provider"] == "maint.vendor"


def test_anonymous_gets_nothing(client):
    assert client.get("/compliance/maintenance/log").status_code in (302, 401, 403)
    assert client.get("/compliance/maintenance/status").status_code in (302, 401, 403)
