"""MSH-7 (required by HL7 v2) must be a readable time no more than the allowed clock skew (one hour) ahead:
otherwise the message is refused (AR on MSH-7) and nothing is applied, so a far-future time cannot freeze the
patient's later identity updates (which are ordered by MSH-7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dpi.hl7 import testing as t
from dpi.hl7.receiver import receive
from patients.models import Encounter, Patient

pytestmark = pytest.mark.django_db


def _with_msh7(message: str, stamp: str) -> str:
    fields = message.split("|")
    fields[6] = stamp  # MSH-7 (fields[0] is MSH, fields[1] MSH-2)
    return "|".join(fields)


@pytest.mark.parametrize("stamp", ["garbage", "2026XX03", ""])
def test_an_unreadable_or_missing_message_time_is_refused(stamp):
    receive(t.adt("A28", "8101", family="AVANT"))
    for event in ("A08", "A01"):
        answer = receive(_with_msh7(t.adt(event, "8101", family="APRES", visit="V8101"), stamp))
        assert t.ack_fields(answer)["code"] == "AR"
        assert t.ack_fields(answer)["err_location"] == "MSH^1^7"
    assert Patient.objects.get(ipp="8101").birth_name == "AVANT"
    assert not Encounter.objects.filter(patient__ipp="8101").exists()


def test_a_far_future_message_time_is_refused_and_does_not_freeze_later_updates():
    receive(t.adt("A28", "8102", family="AVANT"))
    answer = receive(_with_msh7(t.adt("A08", "8102", family="FUTUR"), "99991231235959"))
    assert t.ack_fields(answer)["code"] == "AR" and t.ack_fields(answer)["err_location"] == "MSH^1^7"
    two_hours = t.ts(timezone.localtime() + timedelta(hours=2))
    answer = receive(_with_msh7(t.adt("A08", "8102", family="FUTUR"), two_hours))
    assert t.ack_fields(answer)["err_location"] == "MSH^1^7"
    assert Patient.objects.get(ipp="8102").birth_name == "AVANT"
    soon = t.ts(timezone.localtime() + timedelta(minutes=10))  # within the clock skew allowed
    assert t.ack_fields(receive(_with_msh7(t.adt("A08", "8102", family="PROCHE"), soon)))["code"] == "AA"
    assert Patient.objects.get(ipp="8102").birth_name == "PROCHE"
    now = t.ts(timezone.localtime() + timedelta(minutes=11))
    assert t.ack_fields(receive(_with_msh7(t.adt("A08", "8102", family="ENSUITE"), now)))["code"] == "AA"
    assert Patient.objects.get(ipp="8102").birth_name == "ENSUITE"


def test_a_far_future_time_stored_before_the_check_no_longer_freezes_the_identity():
    from datetime import UTC, datetime

    from dpi.hl7.models import InboundMessage

    receive(t.adt("A28", "8110", family="AVANT"))
    InboundMessage.objects.filter(patient_key="8110").update(  # as stored by a release that did not check MSH-7
        message_type="ADT^A08", message_time=datetime(9999, 12, 31, tzinfo=UTC)
    )
    assert t.ack_fields(receive(t.adt("A08", "8110", family="APRES")))["code"] == "AA"
    assert Patient.objects.get(ipp="8110").birth_name == "APRES"
