"""Identity rules: self-access, same family name, same address, coworker — each with a positive and a negative
case, and the explanation (a care relationship) silencing them where it should."""

import pytest

from access.models import StaffProfile
from access.policy import Role
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D = day_ago(3)


def test_self_access_is_scored_even_when_explained(cast):
    StaffProfile.objects.filter(user=cast.nurse).update(patient=cast.patient)
    ev(cast.nurse, cast.patient, at=local(D, 10))  # explained: the nurse's unit treats her
    ev(cast.physician, cast.patient, at=local(D, 10))
    summary = run(D)
    assert [h["points"] for h in hits(summary, "self_access", user=cast.nurse)] == [70]
    assert not hits(summary, "self_access", user=cast.physician)


def test_same_family_name_without_care_relationship(cast):
    cast.other_physician.last_name = "Lefèvre"
    cast.other_physician.save(update_fields=["last_name"])
    relative = make_patient(birth_name="LEFEVRE", first_name="Paul")
    stranger = make_patient(birth_name="BERTRAND", first_name="Paul")
    ev(cast.other_physician, relative, at=local(D, 10))
    ev(cast.other_physician, stranger, at=local(D, 10))
    summary = run(D)
    found = hits(summary, "same_name", user=cast.other_physician)
    assert [h["patient_id"] for h in found] == [relative.pk]
    assert found[0]["points"] == 50 and "même nom" in found[0]["fr"] and "same family name" in found[0]["en"]


def test_same_name_is_silent_when_the_unit_treats_the_patient(cast):
    StaffProfile.objects.filter(user=cast.nurse).update(birth_name=cast.patient.birth_name)
    ev(cast.nurse, cast.patient, at=local(D, 10))
    assert not hits(run(D), "same_name")


def test_same_name_matches_the_staff_birth_name_and_the_patient_used_name(cast):
    StaffProfile.objects.filter(user=cast.other_physician).update(birth_name="Dubois-Martin")
    married = make_patient(birth_name="ROUX", used_name="DUBOIS MARTIN", first_name="Anne", sex="F")
    ev(cast.other_physician, married, at=local(D, 10))
    assert hits(run(D), "same_name", patient=married)


def test_same_address_without_care_relationship(cast):
    StaffProfile.objects.filter(user=cast.other_physician).update(address="12 rue des Lilas", postal_code="75011")
    flatmate = make_patient(address="12, Rue des lilas", postal_code="75011")
    elsewhere = make_patient(address="12 rue des Lilas", postal_code="69003")
    ev(cast.other_physician, flatmate, at=local(D, 10))
    ev(cast.other_physician, elsewhere, at=local(D, 10))
    found = hits(run(D), "same_address")
    assert [h["patient_id"] for h in found] == [flatmate.pk]


def test_coworker_record_opened_without_relationship(cast):
    colleague_file = make_patient(first_name="Claire", sex="F")
    make_user("claire.colleague", Role.NURSE, [cast.other_unit], patient=colleague_file)
    other_file = make_patient()
    ev(cast.other_physician, colleague_file, at=local(D, 10))
    ev(cast.other_physician, other_file, at=local(D, 10))
    found = hits(run(D), "coworker")
    # Same unit as the coworker, and nothing done in the file: the full weight.
    assert [(h["patient_id"], h["points"]) for h in found] == [(colleague_file.pk, 35 + 15 + 15)]
    assert found[0]["detail"]["same_unit"] is True


def test_coworker_with_a_clinical_action_in_another_unit_scores_below_the_alert(cast):
    colleague_file = make_patient()
    make_user("paul.colleague", Role.NURSE, [cast.cardio], patient=colleague_file)
    ev(cast.other_physician, colleague_file, at=local(D, 10))
    ev(cast.other_physician, colleague_file, at=local(D, 10, 5), action="create")
    summary = run(D)
    assert [h["points"] for h in hits(summary, "coworker")] == [35]
    assert not summary.created
