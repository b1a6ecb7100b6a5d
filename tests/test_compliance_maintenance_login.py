"""Maintenance providers sign in only inside an approved window; outside it the sign-in is refused and audited."""

from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import RequestFactory
from django.utils import timezone

from access.policy import Role
from dpi.compliance.models import MaintenanceLogEntry
from dpi.compliance.services import maintenance_login_allowed, maintenance_window_approve, maintenance_window_revoke
from tests.helpers import audit_events
from tests.personas import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(db):
    return make_user("maint.vendor", Role.MAINTENANCE)


@pytest.fixture
def it_admin(db):
    return make_user("it.admin", Role.IT_ADMIN)


def sign_in(username: str, password: str = PASSWORD):
    return authenticate(RequestFactory().post("/accounts/login/"), username=username, password=password)


def logbook(**filters) -> list[MaintenanceLogEntry]:
    """Refusals are written on the independent `audit` connection (they survive the refused request)."""
    seen = {}
    for alias in ("default", "audit"):
        for e in MaintenanceLogEntry.objects.using(alias).filter(**filters):
            seen[e.pk] = e
    return [seen[k] for k in sorted(seen)]


def window(provider, it_admin, start_h: float, end_h: float, **kw):
    now = timezone.now()
    return maintenance_window_approve(provider=provider, starts_at=now + timedelta(hours=start_h),
                                      ends_at=now + timedelta(hours=end_h), purpose=kw.get("purpose", "upgrade"),
                                      approved_by=it_admin)


def test_outside_any_window_the_sign_in_is_refused_and_audited(provider):
    assert sign_in("maint.vendor") is None
    (event,) = audit_events(action="login", outcome="denied", basis="deny:maintenance_window")
    assert event.actor_id == provider.pk and event.actor_role == "maintenance"
    (entry,) = logbook(actor_id=provider.pk, outcome="refused")
    assert "refused" in entry.what and entry.window is None


def test_a_wrong_password_is_an_ordinary_failure_not_a_window_event(provider):
    assert sign_in("maint.vendor", "wrong-password") is None
    assert audit_events(basis="deny:maintenance_window") == []


@pytest.mark.parametrize("start_h,end_h", [(1, 3), (-3, -1)])
def test_a_future_or_past_window_does_not_open_the_door(provider, it_admin, start_h, end_h):
    window(provider, it_admin, start_h, end_h)
    assert sign_in("maint.vendor") is None
    assert not maintenance_login_allowed(provider, timezone.now())


def test_inside_an_approved_window_the_provider_signs_in(provider, it_admin):
    w = window(provider, it_admin, -1, 2)
    assert sign_in("maint.vendor") == provider
    assert maintenance_login_allowed(provider, timezone.now())
    assert not maintenance_login_allowed(provider, w.ends_at)  # the end is excluded
    assert maintenance_login_allowed(provider, w.starts_at)


def test_a_revoked_window_closes_the_door(provider, it_admin):
    w = window(provider, it_admin, -1, 2)
    maintenance_window_revoke(window=w, by=it_admin)
    assert sign_in("maint.vendor") is None


def test_another_providers_window_does_not_count(provider, it_admin):
    other = make_user("maint.other", Role.MAINTENANCE)
    window(other, it_admin, -1, 2)
    assert sign_in("maint.vendor") is None


def test_other_accounts_are_not_concerned(cast):
    assert maintenance_login_allowed(cast.physician, timezone.now())
    assert sign_in(cast.physician.username) == cast.physician


def test_a_maintenance_group_member_without_profile_is_a_provider(db):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("maint.group", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="maintenance")[0])
    assert sign_in("maint.group") is None


def test_who_may_approve_a_window(provider, it_admin, cast):
    now = timezone.now()
    with pytest.raises(PermissionDenied):
        maintenance_window_approve(provider=provider, starts_at=now, ends_at=now + timedelta(hours=1),
                                   purpose="x", approved_by=cast.physician)
    assert audit_events(actor_id=cast.physician.pk, outcome="denied", resource_type="maintenance_window")
    with pytest.raises(ValidationError) as exc:
        maintenance_window_approve(provider=cast.nurse, starts_at=now, ends_at=now + timedelta(days=8),
                                   purpose=" ", approved_by=it_admin)
    assert {"provider", "ends_at", "purpose"} <= set(exc.value.message_dict)


def test_approval_is_audited_and_logged(provider, it_admin):
    w = window(provider, it_admin, 0, 2, purpose="PostgreSQL minor upgrade")
    (event,) = audit_events(resource_type="maintenance_window", basis="maintenance:approve")
    assert event.actor_id == it_admin.pk and event.details["provider"] == "maint.vendor"
    (entry,) = logbook(window=w)
    assert entry.approved_by_username == "it.admin" and "PostgreSQL minor upgrade" in entry.what
