from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from access import gate, services
from access.models import AccessReviewItem
from access.policy import Role
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_membership_grants_then_ends_access(cast):
    assert not gate.decide(cast.other_physician, patient_id=cast.patient.pk, category="medical", action="view")
    m = services.membership_add(
        actor=cast.physician,
        patient=cast.patient,
        user=cast.other_physician,
        end=timezone.now() + timedelta(days=3),
        reason="avis pneumologique",
    )
    assert gate.decide(cast.other_physician, patient_id=cast.patient.pk, category="medical", action="view")
    services.membership_end(actor=cast.physician, membership=m)
    assert not gate.decide(cast.other_physician, patient_id=cast.patient.pk, category="medical", action="view")
    kinds = [e.basis for e in audit_events(actor_id=cast.physician.pk, action="permission_change")]
    assert kinds == ["membership_add", "membership_end"]


def test_outside_the_team_nobody_adds_members(cast):
    with pytest.raises(gate.AccessDenied):
        services.membership_add(
            actor=cast.other_physician,
            patient=cast.patient,
            user=cast.other_physician,
            end=timezone.now() + timedelta(days=3),
            reason="moi-même",
        )


def test_objection_denies_the_professional_despite_the_care_relationship(cast):
    services.objection_record(actor=cast.reception, patient=cast.patient, professional=cast.nurse, reason="voisine")
    d = gate.decide(cast.nurse, patient_id=cast.patient.pk, category="medical", action="view")
    assert not d.allowed and d.basis == "deny:objection"


def test_role_changes_are_audited_and_restricted(cast):
    it = __import__("tests.personas", fromlist=["make_user"]).make_user("it.admin", Role.IT_ADMIN)
    with pytest.raises(PermissionDenied):
        services.staff_role_set(actor=cast.nurse, user=cast.outsider, role=Role.PHYSICIAN)
    services.staff_role_set(actor=it, user=cast.outsider, role=Role.PHYSICIAN, units=[cast.cardio])
    event = audit_events(actor_id=it.pk, action="permission_change")[-1]
    assert event.details["role"] == "physician" and event.details["old_role"] is None
    cast.outsider._dpi_profile = False
    assert gate.decide(cast.outsider, patient_id=cast.patient.pk, category="medical", action="view")


def test_yearly_review_lists_unreviewed_rights_and_revocation_disables(cast):
    campaign = services.review_campaign_start(
        actor=cast.dpo, name="Revue 2026", due_at=timezone.now() + timedelta(days=30)
    )
    assert services.review_progress(campaign)["pending"] == services.review_progress(campaign)["total"] == 6
    item = campaign.items.get(user=cast.nurse)
    services.review_item_decide(
        reviewer=cast.dpo, item=item, decision=AccessReviewItem.Decision.REVOKED, comment="a quitté le service"
    )
    cast.nurse.refresh_from_db()
    assert not cast.nurse.is_active
    assert not gate.decide(cast.nurse, patient_id=cast.patient.pk, category="medical", action="view")
    assert cast.nurse not in [i.user for i in services.review_unreviewed(campaign)]
    assert {"review_start", "review_decide", "account_disable"} <= {
        e.basis for e in audit_events(action="permission_change")
    }
