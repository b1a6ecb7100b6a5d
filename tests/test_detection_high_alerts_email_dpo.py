"""High-severity alerts e-mail the DPO once, after the detector's transaction commits, without the patient's
identity."""

import pytest
from django.core import mail

from access.models import StaffProfile
from audit.detection import services
from tests.detection_support import day_ago, ev, fast_password_hashing, local  # noqa: F401
from tests.personas import make_patient

pytestmark = pytest.mark.django_db
D = day_ago(3)


def test_high_alert_mails_the_dpo_once(cast, settings, django_capture_on_commit_callbacks):
    settings.DPI_DPO_EMAILS = ["dpo@hopital.example"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    StaffProfile.objects.filter(user=cast.nurse).update(end_date=D)
    ev(cast.nurse, cast.patient, at=local(D + __import__("datetime").timedelta(days=1), 8))
    with django_capture_on_commit_callbacks(execute=True):
        services.detect_range(day_from=D, day_to=day_ago(1))
    assert len(mail.outbox) == 1
    msg = mail.outbox[0]
    assert msg.to == ["dpo@hopital.example"] and "after_end_date" in msg.body
    assert cast.patient.birth_name not in msg.body
    # the link is the French queue, not the JSON API (which a browser cannot read)
    assert "/dpo/queue/" in msg.body and "/dpo/alerts/" not in msg.body
    with django_capture_on_commit_callbacks(execute=True):
        services.detect_range(day_from=D, day_to=day_ago(1))
    assert len(mail.outbox) == 1


def test_medium_alert_sends_nothing(cast, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    colleague = make_patient()
    StaffProfile.objects.filter(user=cast.physician).update(patient=colleague)
    ev(cast.other_physician, colleague, at=local(D, 10))
    with django_capture_on_commit_callbacks(execute=True):
        summary = services.detect_range(day_from=D, day_to=D)
    assert summary.created and not mail.outbox
