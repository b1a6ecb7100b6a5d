"""The rights register: a request is due one month after receipt (art. 12(3) GDPR), extendable once by two
months within that month; only the DPO or the DIM physician registers and answers; every step is audited."""

from datetime import date, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from dpi.compliance import selectors
from dpi.compliance.models import RightsRequest
from dpi.compliance.services import add_one_month, rights_request_extend, rights_request_register
from tests.helpers import audit_events
from tests.test_compliance_support import verified_login

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("received,due", [
    (date(2026, 3, 15), date(2026, 4, 15)),
    (date(2026, 1, 31), date(2026, 2, 28)),
    (date(2028, 1, 31), date(2028, 2, 29)),
    (date(2026, 12, 20), date(2027, 1, 20)),
])
def test_due_one_month_after_receipt(received, due):
    assert add_one_month(received) == due


def test_registering_starts_the_clock_at_receipt(cast):
    received = timezone.now() - timedelta(days=3)
    r = rights_request_register(patient=cast.patient, kind="access", identity_proof="carte d'identité vue au guichet",
                                by=cast.dpo, received_at=received)
    assert r.due_at == add_one_month(timezone.localdate(received))
    assert r.status == RightsRequest.Status.RECEIVED
    (event,) = audit_events(resource_type="rights_request", basis="rights:received")
    assert event.patient_id == cast.patient.pk and event.actor_id == cast.dpo.pk
    assert event.details["due_at"] == r.due_at.isoformat()


def test_identity_must_be_checked(cast):
    with pytest.raises(ValidationError) as exc:
        rights_request_register(patient=cast.patient, kind="access", identity_proof="  ", by=cast.dpo)
    assert "identity_proof" in exc.value.message_dict


def test_only_rights_officers_register(cast):
    for user in (cast.physician, cast.reception, cast.outsider):
        with pytest.raises(PermissionDenied):
            rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=user)
    assert len(audit_events(resource_type="rights_request", outcome="denied", basis="deny:role")) == 3
    assert rights_request_register(patient=cast.patient, kind="erasure", identity_proof="CNI", by=cast.dim)


def test_extension_by_two_months_once_within_the_first_month(cast):
    r = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    with pytest.raises(ValidationError):
        rights_request_extend(request=r, by=cast.dpo, reason=" ")
    r = rights_request_extend(request=r, by=cast.dpo, reason="dossier de 30 ans sur microfilms")
    received = timezone.localdate(r.received_at)
    assert r.extended and r.due_at == add_one_month(add_one_month(add_one_month(received)))
    with pytest.raises(ValidationError, match="three months"):
        rights_request_extend(request=r, by=cast.dpo, reason="encore")
    late = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo,
                                   received_at=timezone.now() - timedelta(days=40))
    with pytest.raises(ValidationError, match="within the first month"):
        rights_request_extend(request=late, by=cast.dpo, reason="trop tard")


def test_the_register_shows_what_is_overdue(cast):
    old = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo,
                                  received_at=timezone.make_aware(datetime(2026, 1, 5, 10)))
    fresh = rights_request_register(patient=cast.patient, kind="objection", identity_proof="CNI", by=cast.dpo)
    rows = {r["id"]: r for r in selectors.rights_register(today=timezone.localdate())}
    assert rows[old.pk]["overdue"] and rows[old.pk]["days_left"] < 0
    assert not rows[fresh.pk]["overdue"] and 27 <= rows[fresh.pk]["days_left"] <= 31
    assert list(rows) == sorted(rows, key=lambda k: rows[k]["due_at"])


def test_the_register_view_is_for_rights_officers(client, cast):
    rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    verified_login(client, cast.physician)
    assert client.get("/compliance/rights").status_code == 403
    client.logout()
    verified_login(client, cast.dpo)
    response = client.get("/compliance/rights?open=1")
    assert response.status_code == 200
    (row,) = response.json()["requests"]
    assert row["kind"] == "access" and row["patient_id"] == cast.patient.pk
