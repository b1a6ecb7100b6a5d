"""Every role x category x action x relationship state, with the expected decision and its audit event.

The expectation is written from the specification (access.policy is the declared matrix; the
relationship rules are restated here), not by calling the gate's own helpers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from access import gate
from access.models import CareTeamMembership, EmergencyAccess, PatientObjection
from access.policy import MATRIX, Action, Category, Role
from patients import services as ps
from patients.models import Appointment, CareUnit, Encounter
from tests.helpers import audit_events
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db

STATES = [
    "active_encounter",
    "post_discharge",
    "ended",
    "none",
    "membership",
    "membership_ended",
    "appointment",
    "break_glass_active",
    "break_glass_expired",
    "objection",
    "objection_break_glass",
    "restricted_in_team",
    "restricted_outside",
]
# Relationship states in which a care relationship (or emergency access) exists now.
CARE_NOW = {
    "active_encounter",
    "post_discharge",
    "membership",
    "appointment",
    "break_glass_active",
    "objection_break_glass",
    "restricted_in_team",
}
# Roles whose medical access needs a care relationship (spec: CNIL need-to-know).
NEEDS_CARE = {Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE, Role.PHARMACIST, Role.MEDICAL_SECRETARY}


# Identity visibility (spec): a restricted patient exists only for its care team, an active break-the-glass,
# or these purposes: reception registering an arrival; the ADT and laboratory feeds writing.
PURPOSES = {
    Role.RECEPTION: {(Category.ADMINISTRATIVE, Action.CREATE)},
    Role.INTEGRATION: {
        (Category.ADMINISTRATIVE, Action.CREATE),
        (Category.ADMINISTRATIVE, Action.AMEND),
        (Category.MEDICAL, Action.CREATE),
    },
}


def expected(role: Role, category: Category, action: Action, state: str) -> bool:
    if action not in MATRIX[role].get(category, frozenset()):
        return False
    in_team = role in NEEDS_CARE and state in CARE_NOW
    if state == "appointment" and role == Role.MEDICAL_SECRETARY:
        in_team = False  # only a clinician is the practitioner of an appointment
    if state.startswith("restricted") and not in_team and (category, action) not in PURPOSES.get(role, set()):
        return False
    if category == Category.ADMINISTRATIVE or role not in NEEDS_CARE:
        return True
    return in_team


def build_state(state: str, user, unit: CareUnit, other: CareUnit):
    now = timezone.now()
    restricted = state.startswith("restricted")
    patient = make_patient(
        confidentiality="restricted" if restricted else "normal", restriction_reason="vip" if restricted else ""
    )
    if state in {"active_encounter", "objection", "objection_break_glass", "restricted_in_team"}:
        ps.encounter_admit(patient=patient, unit=unit, start=now - timedelta(days=2))
    elif state == "post_discharge":
        Encounter.objects.create(
            patient=patient, unit=unit, start=now - timedelta(days=20), end=now - timedelta(days=10)
        )
    elif state == "ended":
        Encounter.objects.create(
            patient=patient, unit=unit, start=now - timedelta(days=60), end=now - timedelta(days=31)
        )
    elif state == "membership":
        CareTeamMembership.objects.create(
            patient=patient,
            user=user,
            start=now - timedelta(days=1),
            end=now + timedelta(days=5),
            reason="avis spécialisé",
        )
    elif state == "membership_ended":
        CareTeamMembership.objects.create(
            patient=patient,
            user=user,
            start=now - timedelta(days=10),
            end=now - timedelta(days=1),
            reason="avis spécialisé",
        )
    elif state == "appointment":
        Appointment.objects.create(
            patient=patient,
            unit=unit,
            practitioner=user,
            start=now + timedelta(days=1),
            end=now + timedelta(days=1, hours=1),
        )
    else:  # none / break-glass / restricted_outside: the patient is cared for in another unit
        ps.encounter_admit(patient=patient, unit=other, start=now - timedelta(days=1))
    if state in {"objection", "objection_break_glass"}:
        PatientObjection.objects.create(patient=patient, professional=user, reason="voisin")
    if state in {"break_glass_active", "objection_break_glass"}:
        EmergencyAccess.objects.create(
            user=user,
            patient=patient,
            reason_category="emergency",
            reason_text="arrêt cardiaque",
            started_at=now - timedelta(minutes=5),
            expires_at=now + timedelta(hours=4),
        )
    if state == "break_glass_expired":
        EmergencyAccess.objects.create(
            user=user,
            patient=patient,
            reason_category="emergency",
            reason_text="arrêt cardiaque",
            started_at=now - timedelta(hours=6),
            expires_at=now - timedelta(hours=2),
        )
    return patient


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("state", STATES)
def test_every_role_category_action_in_every_state(role: Role, state: str):
    unit = CareUnit.objects.create(code="u-test", name="Unité test")
    other = CareUnit.objects.create(code="u-other", name="Autre unité")
    user = make_user(f"u.{role.value}", role, [unit] if role in NEEDS_CARE else [])
    if role == Role.INTEGRATION:
        gate.mark_token_principal(user)  # integration accounts act by API token only
    patient = build_state(state, user, unit, other)
    cases = [(c, a) for c in Category for a in Action]
    for category, action in cases:
        decision = gate.authorize(user, patient_id=patient.pk, category=category, action=action)
        want = expected(role, category, action, state)
        assert decision.allowed is want, (role, category, action, state, decision)
        if (
            not want
            and not state.startswith("restricted")
            and role in {Role.PHYSICIAN, Role.NURSE, Role.MIDWIFE}
            and category != Category.ADMINISTRATIVE
            and action in MATRIX[role].get(category, frozenset())
        ):
            assert decision.can_break_glass, "a clinician refused for lack of relationship is offered break-the-glass"
    events = audit_events(actor_id=user.pk, patient_id=patient.pk)
    assert len(events) == len(cases)
    for (category, action), event in zip(cases, events, strict=True):
        assert (event.category, event.action) == (category.value, action.value)
        assert event.outcome == ("allowed" if expected(role, category, action, state) else "denied")
        assert event.actor_role == role.value
        assert event.basis


def test_objection_is_flagged_on_break_glass(cast):
    PatientObjection.objects.create(patient=cast.patient, professional=cast.physician)
    assert not gate.decide(
        cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW
    ).allowed
    now = timezone.now()
    EmergencyAccess.objects.create(
        user=cast.physician,
        patient=cast.patient,
        reason_category="emergency",
        reason_text="urgence vitale",
        started_at=now,
        expires_at=now + timedelta(hours=1),
    )
    decision = gate.authorize(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW)
    assert decision.allowed and decision.basis == "break_glass"
    assert "patient_objection" in decision.flags
    assert audit_events(actor_id=cast.physician.pk)[-1].details["flags"] == ["patient_objection"]


def test_inactive_and_expired_accounts_are_denied(cast):
    cast.physician.staff.end_date = timezone.localdate() - timedelta(days=1)
    cast.physician.staff.save()
    cast.physician._dpi_profile = False
    d = gate.authorize(cast.physician, patient_id=cast.patient.pk, category=Category.ADMINISTRATIVE, action=Action.VIEW)
    assert not d.allowed and d.basis == "deny:contract"
    cast.nurse.is_active = False
    d = gate.authorize(cast.nurse, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW)
    assert not d.allowed and d.basis == "deny:inactive"


def test_user_without_role_and_anonymous_are_denied(cast):
    from django.contrib.auth.models import AnonymousUser

    assert (
        gate.authorize(cast.outsider, patient_id=cast.patient.pk, category="administrative", action="view").basis
        == "deny:no_role"
    )
    assert (
        gate.authorize(AnonymousUser(), patient_id=cast.patient.pk, category="administrative", action="view").basis
        == "deny:anonymous"
    )
    assert len(audit_events(patient_id=cast.patient.pk, outcome="denied")) == 2


def test_unknown_category_or_action_is_denied(cast):
    assert not gate.authorize(cast.physician, patient_id=cast.patient.pk, category="genetics", action="view").allowed
    assert not gate.authorize(cast.physician, patient_id=cast.patient.pk, category="medical", action="delete").allowed


def test_second_factor_is_required_for_medical_roles(cast):
    cast.physician.is_verified = lambda: False
    d = gate.authorize(cast.physician, patient_id=cast.patient.pk, category="medical", action="view")
    assert not d.allowed and d.basis == "deny:second_factor"
    cast.physician.is_verified = lambda: True
    assert gate.authorize(cast.physician, patient_id=cast.patient.pk, category="medical", action="view").allowed


def test_system_tasks_are_limited_to_their_purpose(cast):
    gate.authorize_system("retention", patient_id=cast.patient.pk, category="medical", action="export")
    with pytest.raises(gate.AccessDenied):
        gate.authorize_system("detection", patient_id=cast.patient.pk, category="medical", action="view")
    events = audit_events(patient_id=cast.patient.pk, actor_role="system")
    assert [e.outcome for e in events] == ["allowed", "denied"]
