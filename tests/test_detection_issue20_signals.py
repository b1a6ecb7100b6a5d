"""Issue #20, first slice: full unit membership, refusals as signals, tolerant addresses, break-the-glass abuse.

Small hand-built cases, each failing on the detector as it was before.
"""

from datetime import timedelta

import pytest

from access.models import CareTeamMembership, EmergencyAccess, StaffProfile
from access.policy import Role
from audit.detection.models import Alert
from patients.models import CareUnit, Encounter
from patients.services import encounter_admit
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D = day_ago(3)


# --- 1. the user's full unit membership, not the 100-character label of the event ---------------------------

def test_float_nurse_in_fifteen_units_keeps_every_unit(cast):
    units = [CareUnit.objects.create(code=f"unite-soins-{i:02d}", name=f"Unité {i}") for i in range(15)]
    floater = make_user("float.nurse", Role.NURSE, units)
    label = StaffProfile.objects.get(user=floater).unit_label
    assert len(label) > 100  # the audit event keeps only actor_unit[:100]
    patient = make_patient()
    encounter_admit(patient=patient, unit=units[-1])  # the last unit: cut off the recorded label
    ev(floater, patient, at=local(D, 10), unit=label[:100])
    summary = run(D)
    assert summary.passes[0].explained_events == summary.passes[0].patient_events == 1
    assert not Alert.objects.exists()


def test_the_event_label_still_counts_without_a_profile_unit(cast):
    """A unit recorded with the event but no longer in the profile (a transfer) still explains that day."""
    ev(cast.other_physician, cast.patient, at=local(D, 10), unit="cardio-t")
    summary = run(D)
    assert summary.passes[0].explained_events == 1


# --- 2. refusals are signals ---------------------------------------------------------------------------------

def _denied(user, patient, at, category="medical"):
    ev(user, patient, at=at, outcome="denied", basis="deny:role", category=category)


def test_reception_refused_clinical_data_on_several_patients_alerts(cast):
    for i in range(3):
        _denied(cast.reception, make_patient(), local(D - timedelta(days=i), 10))
    summary = run(D)
    [hit] = hits(summary, "denied_clinical", user=cast.reception, day=D)
    assert hit["detail"]["patients"] == 3 and hit["points"] == 60
    alert = Alert.objects.get(user=cast.reception, day=D)
    assert "refusée" in alert.reason_fr and "refused" in alert.reason_en


def test_one_refusal_or_a_physician_few_refusals_do_not_alert(cast):
    _denied(cast.reception, make_patient(), local(D, 10))  # a misclick
    for _ in range(3):  # an on-call physician's refused advice reads
        _denied(cast.other_physician, make_patient(), local(D, 11))
    assert not hits(run(D), "denied_clinical")


def test_denied_then_granted_through_a_membership_the_user_created(cast):
    target = make_patient()
    _denied(cast.other_physician, target, local(D - timedelta(days=2), 10))
    m = CareTeamMembership.objects.create(patient=target, user=cast.other_physician, granted_by=cast.other_physician,
                                          start=local(D - timedelta(days=1), 9), end=local(D + timedelta(days=5), 9),
                                          reason="avis")
    CareTeamMembership.objects.filter(pk=m.pk).update(created_at=local(D - timedelta(days=1), 9))
    ev(cast.other_physician, target, at=local(D, 10), basis="care:membership")
    summary = run(D)
    [hit] = hits(summary, "denied_then_granted", user=cast.other_physician, patient=target)
    # the membership it granted itself explains nothing (covering): it is the denied-then-granted relationship
    assert hit["points"] == 70 and hit["detail"]["explained_by"] is None
    assert Alert.objects.get(user=cast.other_physician, patient_id=target.pk).score >= 70


def test_denied_then_granted_through_an_encounter_created_per_the_audit_trail(cast):
    target = make_patient()
    _denied(cast.reception, target, local(D, 9))
    ev(cast.reception, target, at=local(D, 9, 30), action="create", category="administrative",
       resource_type="encounter")
    ev(cast.reception, target, at=local(D, 10))
    assert hits(run(D), "denied_then_granted", user=cast.reception, patient=target)


def test_denied_then_granted_needs_a_relationship_created_by_the_same_account(cast):
    target = make_patient()
    _denied(cast.other_physician, target, local(D - timedelta(days=1), 10))
    CareTeamMembership.objects.create(patient=target, user=cast.other_physician, granted_by=cast.physician,
                                      start=local(D - timedelta(days=1), 11), end=local(D + timedelta(days=5), 9),
                                      reason="avis demandé")
    ev(cast.other_physician, target, at=local(D, 10), basis="care:membership")
    assert not hits(run(D), "denied_then_granted")


# --- 3. address matching tolerant of abbreviations and accents ------------------------------------------------

@pytest.mark.parametrize(("staff", "patient"), [
    ("3 imp. des Acacias", "3 impasse des acacias"),
    ("10 bd Saint-Michel", "10, boulevard St Michel"),
    ("4 av. Général Leclerc", "4 avenue du General Leclerc"),
    ("8 r. de l'Église", "8 rue de l eglise"),
    ("2 pl. Sainte-Anne", "2 place Ste Anne"),
])
def test_same_address_despite_abbreviations_and_accents(cast, staff, patient):
    StaffProfile.objects.filter(user=cast.other_physician).update(address=staff, postal_code="75011")
    flatmate = make_patient(address=patient, postal_code="75011")
    neighbour = make_patient(address=patient.replace(patient.split()[0], "99", 1), postal_code="75011")
    ev(cast.other_physician, flatmate, at=local(D, 10))
    ev(cast.other_physician, neighbour, at=local(D, 10))
    assert [h["patient_id"] for h in hits(run(D), "same_address")] == [flatmate.pk]


def test_neighbour_in_the_same_street_opened_for_nothing(cast):
    StaffProfile.objects.filter(user=cast.other_physician).update(address="3 imp. des Acacias", postal_code="75011")
    neighbour = make_patient(address="17 bis impasse des acacias", postal_code="75011")
    same_house = make_patient(address="3 impasse des Acacias", postal_code="75011")
    other_town = make_patient(address="17 impasse des Acacias", postal_code="69003")
    treated = make_patient(address="21 impasse des Acacias", postal_code="75011")
    encounter_admit(patient=treated, unit=cast.other_unit)
    for p in (neighbour, same_house, other_town, treated):
        ev(cast.other_physician, p, at=local(D, 10))
    summary = run(D)
    [hit] = hits(summary, "neighbour")
    assert hit["patient_id"] == neighbour.pk and hit["points"] == 50 and "même rue" in hit["fr"]
    assert [h["patient_id"] for h in hits(summary, "same_address")] == [same_house.pk]


def test_neighbour_needs_a_view_only_unexplained_read(cast):
    StaffProfile.objects.filter(user=cast.other_physician).update(address="3 rue des Lilas", postal_code="75011")
    neighbour = make_patient(address="5 r. des Lilas", postal_code="75011")
    ev(cast.other_physician, neighbour, at=local(D, 10), action="create")  # a note written: care, not curiosity
    assert not hits(run(D), "neighbour")


# --- 4. break-the-glass abuse --------------------------------------------------------------------------------

def _break_glass(user, patient, at, reason):
    # the patient is in the hospital then (an emergency has a patient): only the reason and repeats count here
    if not Encounter.objects.filter(patient=patient).update(start=at - timedelta(days=1)):
        encounter_admit(patient=patient, unit=CareUnit.objects.get(code="cardio-t"), start=at - timedelta(days=1))
    EmergencyAccess.objects.create(user=user, patient=patient, reason_category="other", reason_text=reason,
                                   started_at=at, expires_at=at + timedelta(hours=4))
    ev(user, patient, at=at, action="break_glass", basis="break_glass")


@pytest.mark.parametrize("reason", ["", "urgence", "Urgence !", "besoin d'accès au dossier", "voir"])
def test_break_the_glass_with_a_weak_or_missing_reason_alerts(cast, reason):
    _break_glass(cast.other_physician, cast.patient, local(D, 10), reason)
    summary = run(D)
    [hit] = hits(summary, "break_glass")
    assert hit["points"] == 65 and hit["detail"]["weak_reason"] is True
    assert "motif" in Alert.objects.get().reason_fr


def test_break_the_glass_with_a_real_reason_stays_below_the_threshold(cast):
    _break_glass(cast.other_physician, cast.patient, local(D, 10), "Patient inconscient aux urgences, traitements")
    [hit] = hits(run(D), "break_glass")
    assert hit["points"] == 35 and hit["detail"]["weak_reason"] is False
    assert not Alert.objects.exists()


def test_break_the_glass_repeats_spread_over_weeks_alert(cast):
    reason = "Patient inconscient aux urgences, traitements en cours"
    for weeks in (3, 2, 0):  # one a week or so: never 3 within 7 days
        _break_glass(cast.other_physician, make_patient(), local(D - timedelta(days=7 * weeks + weeks), 10), reason)
    found = hits(run(D), "break_glass", day=D)
    assert found[0]["points"] == 65 and found[0]["detail"]["long_patients"] == 3
    assert found[0]["detail"]["recent_patients"] == 1
