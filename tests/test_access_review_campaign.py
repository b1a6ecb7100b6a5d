"""The yearly authorization review covers every right held (CNIL DPI fiche 11), refuses self-review and reminds
the reviewers; it starts from a command or the DPO's button."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.utils import timezone

from access import services
from access.models import AccessReviewCampaign, AccessReviewItem, CareTeamMembership
from access.policy import Role
from tests.helpers import audit_events
from tests.personas import make_user
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def rights(cast):
    """Accounts holding a right in every way Django allows, plus one holding none."""
    root = User.objects.create_superuser("root.admin", "root@example.org", "Correct-Horse-Battery-9!")
    group_only = User.objects.create_user("group.only", password="Correct-Horse-Battery-9!")
    group_only.groups.add(Group.objects.get_or_create(name="archivists")[0])
    perm_only = User.objects.create_user("perm.only", password="Correct-Horse-Battery-9!")
    perm_only.user_permissions.add(Permission.objects.get(codename="view_user"))
    nobody = User.objects.create_user("no.rights", password="Correct-Horse-Battery-9!")
    membership = CareTeamMembership.objects.create(
        patient=cast.patient, user=cast.other_physician, start=timezone.now() - timedelta(days=1),
        end=timezone.now() + timedelta(days=10),
        reason="avis pneumologique", granted_by=cast.physician)
    return {"root": root, "group_only": group_only, "perm_only": perm_only, "nobody": nobody,
            "membership": membership}


def _start(cast):
    return services.review_campaign_start(actor=cast.dpo, name="Revue 2026", due_at=timezone.now() + timedelta(days=30))


def test_every_account_with_a_right_and_every_membership_is_listed(cast, rights):
    campaign = _start(cast)
    accounts = set(campaign.items.filter(kind="account").values_list("user__username", flat=True))
    for user in (cast.physician, cast.nurse, cast.reception, cast.dpo, cast.dim, rights["root"],
                 rights["group_only"], rights["perm_only"]):
        assert user.username in accounts
    assert "no.rights" not in accounts
    assert "no.role" not in accounts  # the cast's outsider holds nothing
    membership_items = campaign.items.filter(kind="membership")
    assert list(membership_items.values_list("membership_id", flat=True)) == [rights["membership"].pk]
    root_item = campaign.items.get(user=rights["root"])
    assert "superuser" in root_item.rights
    assert "group archivists" in campaign.items.get(user=rights["group_only"]).rights
    assert services.review_missing_subjects(campaign) == []


def test_a_right_granted_after_the_start_shows_as_missing(cast, rights):
    campaign = _start(cast)
    make_user("late.comer", Role.NURSE, [cast.cardio])
    missing = services.review_missing_subjects(campaign)
    assert any(line.startswith("late.comer") for line in missing)


def test_a_reviewer_cannot_confirm_their_own_rights(cast, rights):
    campaign = _start(cast)
    own = campaign.items.get(user=cast.dpo, kind="account")
    with pytest.raises(PermissionDenied):
        services.review_item_decide(reviewer=cast.dpo, item=own, decision="confirmed")
    own.refresh_from_db()
    assert own.decision == AccessReviewItem.Decision.PENDING
    assert audit_events(basis="deny:self_review", outcome="denied")
    other = campaign.items.get(user=cast.nurse)
    services.review_item_decide(reviewer=cast.dpo, item=other, decision="confirmed")
    other.refresh_from_db()
    assert other.decision == "confirmed" and other.reviewer == cast.dpo


def test_self_review_through_the_dashboard_is_refused_with_a_message(cast, rights):
    campaign = _start(cast)
    own = campaign.items.get(user=cast.dpo, kind="account")
    response = verified_client(cast.dpo).post(f"/dpo/review-items/{own.pk}/decide/", {"decision": "confirmed"},
                                              follow=True)
    assert response.status_code == 200
    own.refresh_from_db()
    assert own.decision == "pending"


def test_revoking_a_membership_ends_it(cast, rights):
    campaign = _start(cast)
    item = campaign.items.get(kind="membership")
    services.review_item_decide(reviewer=cast.dpo, item=item, decision="revoked", comment="fin d'avis")
    rights["membership"].refresh_from_db()
    assert rights["membership"].end <= timezone.now()
    cast.other_physician.refresh_from_db()
    assert cast.other_physician.is_active  # the account itself is kept


def test_the_command_starts_a_campaign_and_reports_it(cast, rights, capsys):
    call_command("review_campaign", "start", "--by", cast.dpo.username, "--due-days", "20")
    campaign = AccessReviewCampaign.objects.get()
    assert campaign.items.filter(user=rights["root"]).exists()
    call_command("review_campaign", "status")
    assert "reviewed" in capsys.readouterr().out


def test_the_command_refuses_someone_who_may_not_start_a_review(cast):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--by"):
        call_command("review_campaign", "start", "--by", cast.nurse.username)
    assert not AccessReviewCampaign.objects.exists()


def test_the_dpo_button_opens_a_campaign(cast, rights):
    response = verified_client(cast.dpo).post("/dpo/review/start/", {"due_days": "30"})
    assert response.status_code == 302
    campaign = AccessReviewCampaign.objects.get()
    assert campaign.started_by == cast.dpo
    assert campaign.items.filter(kind="membership").count() == 1


def test_reviewers_are_reminded_of_what_is_pending(cast, rights, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    cast.dpo.email = "dpo@hopital.example"
    cast.dpo.save(update_fields=["email"])
    campaign = _start(cast)
    mail.outbox.clear()
    pending = services.review_remind(campaign=campaign)
    assert pending == campaign.items.count()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dpo@hopital.example"]
    assert "à revoir" in mail.outbox[0].subject
    for item in campaign.items.exclude(user=cast.dpo):
        services.review_item_decide(reviewer=cast.dpo, item=item, decision="confirmed")
    other_dpo = make_user("second.dpo", Role.DPO)
    services.review_item_decide(reviewer=other_dpo, item=campaign.items.get(user=cast.dpo), decision="confirmed")
    mail.outbox.clear()
    assert services.review_remind(campaign=campaign) == 0
    assert not mail.outbox
