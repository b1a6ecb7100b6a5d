"""The breach register and its 72-hour clock (art. 33(1) GDPR): deadline, time left, overdue; a late
notification needs its reasons; the DPO dashboard lists breaches still to notify first."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from dpi.compliance.models import Breach
from dpi.compliance.selectors import breach_clock, breaches_dashboard
from dpi.compliance.services import breach_notify_cnil, breach_notify_people, breach_record
from tests.helpers import audit_events
from tests.test_compliance_support import verified_login

pytestmark = pytest.mark.django_db


def record(cast, hours_ago: float, **kw) -> Breach:
    return breach_record(by=cast.dpo, detected_at=timezone.now() - timedelta(hours=hours_ago),
                         description=kw.pop("description", "Clé USB perdue avec un export de rendez-vous"),
                         categories=["identity", "appointments"], approx_people=kw.pop("people", 350), **kw)


def test_the_clock_runs_72_hours_from_awareness(cast):
    b = record(cast, hours_ago=10)
    now = timezone.now()
    clock = breach_clock(b, now)
    assert clock.deadline == b.detected_at + timedelta(hours=72)
    assert clock.remaining == clock.deadline - now and not clock.overdue and not clock.notified
    late = breach_clock(b, b.detected_at + timedelta(hours=73))
    assert late.overdue and late.remaining == timedelta(hours=-1)
    assert audit_events(resource_type="breach", basis="breach:recorded", actor_id=cast.dpo.pk)


def test_notification_stops_the_clock(cast):
    b = record(cast, hours_ago=30)
    b = breach_notify_cnil(breach=b, by=cast.dpo, reference="CNIL-2026-0042")
    clock = breach_clock(b, b.detected_at + timedelta(days=10))
    assert clock.notified and not clock.overdue and not clock.notified_late
    assert clock.remaining == b.notification_deadline - b.notified_cnil_at
    with pytest.raises(ValidationError, match="Already notified"):
        breach_notify_cnil(breach=b, by=cast.dpo)


def test_a_late_notification_needs_its_reasons(cast):
    b = record(cast, hours_ago=80)
    assert breach_clock(b).overdue
    with pytest.raises(ValidationError) as exc:
        breach_notify_cnil(breach=b, by=cast.dpo)
    assert "late_reason" in exc.value.message_dict
    b = breach_notify_cnil(breach=b, by=cast.dpo, late_reason="ampleur établie le 4e jour par l'hébergeur")
    assert breach_clock(b).notified_late


def test_an_unlikely_risk_is_documented_without_a_clock_running_out(cast):
    b = record(cast, hours_ago=100, risk=Breach.Risk.UNLIKELY, description="courriel chiffré mal adressé", people=1)
    clock = breach_clock(b)
    assert not clock.must_notify and not clock.overdue


def test_the_dashboard_puts_breaches_to_notify_first(cast):
    done = breach_notify_cnil(breach=record(cast, hours_ago=5), by=cast.dpo)
    urgent = record(cast, hours_ago=70, risk=Breach.Risk.HIGH)
    later = record(cast, hours_ago=1)
    rows = breaches_dashboard()
    assert [r["id"] for r in rows][:2] == [urgent.pk, later.pk] and rows[-1]["id"] == done.pk
    assert rows[0]["people_to_notify"] and 1.9 < rows[0]["remaining_hours"] < 2.1
    breach_notify_people(breach=urgent, by=cast.dpo)
    assert not next(r for r in breaches_dashboard() if r["id"] == urgent.pk)["people_to_notify"]


def test_who_records_breaches(cast, client):
    with pytest.raises(PermissionDenied):
        breach_record(by=cast.physician, detected_at=timezone.now(), description="x", categories=[], approx_people=1)
    assert audit_events(actor_id=cast.physician.pk, outcome="denied", resource_type="breach")
    with pytest.raises(ValidationError):
        breach_record(by=cast.dpo, detected_at=timezone.now() + timedelta(days=1), description="x",
                      categories=[], approx_people=1)
    record(cast, hours_ago=2)
    verified_login(client, cast.reception)
    assert client.get("/compliance/breaches").status_code == 403
    client.logout()
    verified_login(client, cast.dpo)
    response = client.get("/compliance/breaches")
    assert response.status_code == 200 and response.json()["breaches"][0]["overdue"] is False
