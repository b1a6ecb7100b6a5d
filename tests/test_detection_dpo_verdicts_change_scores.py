"""Issue #20: the DPO's verdicts are labels that change the next scores, and every alert explains itself."""

from datetime import timedelta

import pytest

from access.models import StaffProfile
from audit.detection import services
from audit.detection.models import Alert
from patients.services import encounter_admit
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db
D1, D2 = day_ago(20), day_ago(3)


def _close(alert, status, dpo):
    services.alert_review(alert_id=alert.pk, actor=dpo, status="in_review")
    services.alert_review(alert_id=alert.pk, actor=dpo, status=status, comment="Vu avec le cadre de santé.")


def _own_file(cast):
    """The physician's own file; the patient is in the hospital (cardiology) throughout: no other rule fires."""
    own = make_patient()
    encounter_admit(patient=own, unit=cast.cardio, start=local(D1 - timedelta(days=1), 8))
    StaffProfile.objects.filter(user=cast.other_physician).update(patient=own)
    return own


def test_a_justified_verdict_lowers_the_next_score_of_the_same_situation(cast):
    own = _own_file(cast)
    ev(cast.other_physician, own, at=local(D1, 10))
    run(D1)
    first = Alert.objects.get(user=cast.other_physician, day=D1)
    assert first.score == 70
    _close(first, "justified", cast.dpo)
    ev(cast.other_physician, own, at=local(D2, 10))
    summary = run(D2)
    [hit] = hits(summary, "dpo_justified", user=cast.other_physician, day=D2)
    assert hit["points"] == -40 and hit["detail"]["alert"] == first.pk
    assert not Alert.objects.filter(day=D2).exists()  # 70 - 40 = 30: below the threshold


def test_without_a_verdict_the_same_situation_alerts_again(cast):
    own = _own_file(cast)
    for d in (D1, D2):
        ev(cast.other_physician, own, at=local(d, 10))
    run(D1)
    summary = run(D2)
    assert not hits(summary, "dpo_justified")
    assert Alert.objects.get(day=D2).score == 70


def test_a_violation_verdict_raises_the_next_signals_on_that_user(cast):
    own = _own_file(cast)
    ev(cast.other_physician, own, at=local(D1, 10))
    run(D1)
    _close(Alert.objects.get(day=D1), "violation", cast.dpo)
    admitted = make_patient()
    encounter_admit(patient=admitted, unit=cast.cardio, start=local(D2, 8))
    ev(cast.physician, admitted, at=local(D2, 10), action="break_glass", basis="break_glass")
    ev(cast.other_physician, admitted, at=local(D2, 11), action="break_glass", basis="break_glass")
    summary = run(D2)
    [hit] = hits(summary, "dpo_violation", user=cast.other_physician, day=D2)
    assert hit["points"] == 20
    assert not hits(summary, "dpo_violation", user=cast.physician)
    # a break-the-glass on an admitted patient scores 35 alone: with the earlier violation it alerts
    assert Alert.objects.get(user=cast.other_physician, day=D2).score == 55
    assert not Alert.objects.filter(user=cast.physician).exists()


def test_the_alert_says_what_was_accessed_what_was_looked_for_and_the_baseline(cast):
    for n in range(8, 2, -1):  # ordinary explained days: the baseline
        ev(cast.other_physician, cast.patient, at=local(day_ago(n), 10), unit="pneumo-t")
    StaffProfile.objects.filter(user=cast.other_physician).update(patient=cast.patient)
    ev(cast.other_physician, cast.patient, at=local(day_ago(2), 10))
    run(day_ago(8), day_ago(2))
    alert = Alert.objects.get(day=day_ago(2))
    fr = alert.context["fr"]
    assert "Consulté : 1 accès au dossier du patient" in fr and "aux données médicales" in fr
    assert "Explications recherchées : séjour ou consultation dans son service, rendez-vous" in fr
    assert "Trouvé : aucune" in fr
    assert "il ouvre d'ordinaire 1,0 dossier(s) sans lien de soins par jour" in fr
    page = verified_client(cast.dpo).get(f"/dpo/queue/{alert.pk}/").content.decode()
    assert "Explications recherchées" in page
