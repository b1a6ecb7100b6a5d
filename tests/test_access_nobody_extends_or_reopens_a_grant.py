"""Ending a care-team membership only shortens it. Its "end" was the way to move the end of a membership later:
a member extended her own grant (granted by a colleague, so it counted as another person's act) to any date, and
a colleague re-opened a membership that had ended — both without a new membership recording who grants what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from access import gate
from access import services as access_services
from access.models import CareTeamMembership
from access.policy import Action, Category
from dpi.api.testing import post_json, request_id, verified_login
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _reads_chart(user, patient) -> bool:
    return gate.decide(user, patient_id=patient.pk, category=Category.MEDICAL, action=Action.VIEW).allowed


@pytest.fixture
def membership(cast) -> CareTeamMembership:
    """dr.other (another unit) joins the team for a week, added by dr.house (in the patient's unit)."""
    return access_services.membership_add(actor=cast.physician, patient=cast.patient, user=cast.other_physician,
                                          end=timezone.now() + timedelta(days=7), reason="consultation")


def _case(cast, membership, case: str):
    """(who acts, the membership's end before the act): the member extends her own, or a colleague re-opens one
    that has ended (dr.other, then in the team through her unit's admission, ends her own first)."""
    if case == "member_extends_her_own":
        return cast.other_physician
    access_services.membership_end(actor=cast.physician, membership=membership)
    assert not _reads_chart(cast.other_physician, cast.patient)
    return cast.physician


@pytest.mark.parametrize("case", ["member_extends_her_own", "colleague_reopens_an_ended_one"])
def test_the_api_refuses_an_end_later_than_the_current_one(cast, membership, case):
    actor = _case(cast, membership, case)
    if case == "member_extends_her_own":
        assert _reads_chart(actor, cast.patient)
    before = CareTeamMembership.objects.get(pk=membership.pk).end
    client = Client()
    verified_login(client, actor)
    rid = request_id()
    response = post_json(client, f"/api/care-team-memberships/{membership.pk}/end/",
                         {"at": (timezone.now() + timedelta(days=3650)).isoformat()}, **{"X-Request-ID": rid})
    assert response.status_code == 400, response.content[:300]
    assert "at" in response.json()
    assert CareTeamMembership.objects.get(pk=membership.pk).end == before
    assert "deny:extend" in [e.basis for e in audit_events(request_id=rid)]
    if case == "colleague_reopens_an_ended_one":
        assert not _reads_chart(cast.other_physician, cast.patient)


@pytest.mark.parametrize("case", ["member_extends_her_own", "colleague_reopens_an_ended_one"])
def test_the_service_refuses_it_too(cast, membership, case):
    actor = _case(cast, membership, case)
    before = CareTeamMembership.objects.get(pk=membership.pk).end
    with pytest.raises(ValidationError):
        access_services.membership_end(actor=actor, membership=membership, at=timezone.now() + timedelta(days=365))
    assert CareTeamMembership.objects.get(pk=membership.pk).end == before


def test_ending_earlier_still_works(cast, membership):
    soon = timezone.now() + timedelta(days=1)
    ended = access_services.membership_end(actor=cast.physician, membership=membership, at=soon)
    assert ended.end == soon
    access_services.membership_end(actor=cast.physician, membership=membership)
    assert not _reads_chart(cast.other_physician, cast.patient)
