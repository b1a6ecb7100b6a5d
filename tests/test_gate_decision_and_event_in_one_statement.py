"""The gate decides and records an access to a patient in one statement (issue #18): the event the statement
writes is the one the Python decision describes (outcome, basis, flags, break-the-glass), a refusal reads and
writes nothing on the request's connection and is recorded on the independent one, and the by-id read returns
the row only when allowed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access import gate
from access.models import EmergencyAccess, PatientObjection
from access.policy import Action, Category
from patients.selectors import patient_reader
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _last_event(user):
    return audit_events(actor_id=user.pk)[-1]


def test_a_care_read_is_one_statement_and_its_event_says_why(cast):
    gate.profile_of(cast.physician)  # read once per request
    with CaptureQueriesContext(connections["default"]) as default:
        decision = gate.authorize(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL,
                                  action=Action.VIEW, resource_type="chart", details={"k": "v"})
    assert decision.allowed and decision.basis.startswith("care:")
    assert len(default.captured_queries) == 1
    event = _last_event(cast.physician)
    assert (event.outcome, event.basis, event.patient_id) == ("allowed", decision.basis, cast.patient.pk)
    assert event.details == {"k": "v"}
    assert event.actor_role == decision.role


def test_break_the_glass_over_an_objection_names_both(cast):
    PatientObjection.objects.create(patient=cast.patient, professional=cast.physician)
    now = timezone.now()
    glass = EmergencyAccess.objects.create(user=cast.physician, patient=cast.patient, reason_category="emergency",
                                           reason_text="urgence vitale", started_at=now,
                                           expires_at=now + timedelta(hours=1))
    decision = gate.authorize(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL,
                              action=Action.VIEW)
    assert decision.allowed and decision.basis == "break_glass"
    event = _last_event(cast.physician)
    assert event.basis == "break_glass"
    assert event.details == {"flags": ["patient_objection"], "emergency_access_id": glass.pk}


def test_a_refusal_reads_nothing_and_is_recorded_apart(cast):
    gate.profile_of(cast.other_physician)
    with CaptureQueriesContext(connections["default"]) as default:
        decision, row = gate.authorize_read(cast.other_physician, reader=patient_reader, patient_id=cast.patient.pk,
                                            category=Category.MEDICAL, action=Action.VIEW)
    assert not decision.allowed and row is None
    assert len(default.captured_queries) == 1  # the decision's statement, which wrote nothing
    event = _last_event(cast.other_physician)
    assert (event.outcome, event.basis) == ("denied", decision.basis)


def test_an_allowed_read_returns_the_row(cast):
    decision, row = gate.authorize_read(cast.physician, reader=patient_reader, patient_id=cast.patient.pk,
                                        category=Category.ADMINISTRATIVE, action=Action.VIEW)
    assert decision.allowed and row.pk == cast.patient.pk and row.ins == cast.patient.ins


def test_an_unknown_patient_is_not_found(cast):
    decision, row = gate.authorize_read(cast.physician, reader=patient_reader, patient_id=2**62,
                                        category=Category.ADMINISTRATIVE, action=Action.VIEW)
    assert (decision.allowed, decision.basis, row) == (False, "deny:not_found", None)


def test_an_early_refusal_needs_no_facts(cast):
    decision = gate.authorize(cast.physician, patient_id=0, category=Category.MEDICAL, action=Action.VIEW)
    assert decision.basis == "deny:not_found"
