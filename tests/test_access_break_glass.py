from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from access import gate, services
from access.models import EmergencyAccess, PatientObjection
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def code_for(user) -> str:
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def open_for(user, patient, token):
    return services.break_glass_open(
        user=user,
        patient=patient,
        reason_category="emergency",
        reason_text="Patient inconscient aux urgences, antécédents requis",
        otp_token=token,
    )


def test_outsider_physician_opens_a_bounded_access_and_the_dpo_is_alerted(cast, django_capture_on_commit_callbacks):
    assert not gate.decide(cast.other_physician, patient_id=cast.patient.pk, category="medical", action="view")
    with django_capture_on_commit_callbacks(execute=True):
        access = open_for(cast.other_physician, cast.patient, code_for(cast.other_physician))
    assert access.expires_at - access.started_at == timedelta(hours=4)
    assert access.review_status == EmergencyAccess.Review.PENDING
    decision = gate.authorize(cast.other_physician, patient_id=cast.patient.pk, category="medical", action="view")
    assert decision.allowed and decision.basis == "break_glass"
    assert len(mail.outbox) == 1 and "Break-the-glass" in mail.outbox[0].subject
    assert cast.patient.birth_name not in mail.outbox[0].body
    assert [e.action for e in audit_events(actor_id=cast.other_physician.pk)][-2:] == ["break_glass", "view"]


def test_access_ends_when_it_expires(cast):
    access = open_for(cast.other_physician, cast.patient, code_for(cast.other_physician))
    EmergencyAccess.objects.filter(pk=access.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not gate.decide(cast.other_physician, patient_id=cast.patient.pk, category="medical", action="view")


def test_wrong_code_or_missing_reason_is_refused_and_recorded(cast):
    code_for(cast.other_physician)
    with pytest.raises(ValidationError) as exc:
        services.break_glass_open(
            user=cast.other_physician,
            patient=cast.patient,
            reason_category="emergency",
            reason_text="court",
            otp_token="000000",
        )
    assert {"otp_token", "reason_text"} <= set(exc.value.message_dict)
    assert not EmergencyAccess.objects.exists()
    assert audit_events(action="break_glass")[-1].outcome == "denied"


def test_roles_without_break_glass_are_refused(cast):
    with pytest.raises(PermissionDenied):
        open_for(cast.reception, cast.patient, code_for(cast.reception))
    assert not EmergencyAccess.objects.exists()


def test_objection_is_recorded_on_the_emergency_access(cast):
    PatientObjection.objects.create(patient=cast.patient, professional=cast.physician)
    access = open_for(cast.physician, cast.patient, code_for(cast.physician))
    assert access.patient_objected


def test_only_the_dpo_reviews(cast):
    access = open_for(cast.other_physician, cast.patient, code_for(cast.other_physician))
    with pytest.raises(PermissionDenied):
        services.emergency_access_review(reviewer=cast.physician, access=access, status="justified")
    with pytest.raises(ValidationError):
        services.emergency_access_review(reviewer=cast.dpo, access=access, status="violation", comment="")
    services.emergency_access_review(reviewer=cast.dpo, access=access, status="violation", comment="curiosité")
    access.refresh_from_db()
    assert access.review_status == "violation" and access.reviewed_by == cast.dpo
    assert audit_events(actor_id=cast.dpo.pk, action="permission_change")[-1].basis == "break_glass_review"


def test_nobody_reviews_their_own_emergency_access(cast):
    """A physician who broke the glass and later became the DPO does not judge that access herself."""
    from access.models import StaffProfile

    access = open_for(cast.physician, cast.patient, code_for(cast.physician))
    StaffProfile.objects.filter(user=cast.physician).update(role="dpo")
    cast.physician._dpi_profile = False
    with pytest.raises(PermissionDenied):
        services.emergency_access_review(reviewer=cast.physician, access=access, status="justified")
    access.refresh_from_db()
    assert access.review_status == "pending"
    assert audit_events(actor_id=cast.physician.pk, basis="deny:self_review")
