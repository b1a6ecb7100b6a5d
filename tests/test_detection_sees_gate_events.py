"""The detector reads the events the real gate writes: care-team access is explained, break-the-glass is seen,
and break-the-glass despite the patient's objection alerts."""

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from access import gate
from access import services as access_services
from audit.detection.models import Alert, UserDay
from tests.detection_support import day_ago, fast_password_hashing, hits, run  # noqa: F401

pytestmark = pytest.mark.django_db


def break_glass(user, patient):
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    token = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    access_services.break_glass_open(user=user, patient=patient, reason_category="emergency",
                                     reason_text="Patient inconscient, antécédents nécessaires", otp_token=token)
    assert gate.authorize(user, patient_id=patient.pk, category="medical", action="view").basis == "break_glass"


def test_care_team_access_through_the_gate_is_explained(cast):
    assert gate.authorize(cast.physician, patient_id=cast.patient.pk, category="medical", action="view")
    run(day_ago(0))
    ud = UserDay.objects.get(user_id=cast.physician.pk)
    assert (ud.n_patient_events, ud.n_explained_events) == (1, 1)
    assert not Alert.objects.exists()


def test_break_the_glass_through_the_gate_is_seen(cast):
    break_glass(cast.other_physician, cast.patient)
    summary = run(day_ago(0))
    assert [h["points"] for h in hits(summary, "break_glass", user=cast.other_physician)] == [35]


def test_break_the_glass_despite_an_objection_alerts(cast):
    access_services.objection_record(actor=cast.reception, patient=cast.patient, professional=cast.other_physician,
                                     reason="conflit de voisinage")
    break_glass(cast.other_physician, cast.patient)
    run(day_ago(0))
    alert = Alert.objects.get(user=cast.other_physician)
    assert alert.patient_id == cast.patient.pk and "break_glass" in alert.rules and alert.score >= 75
