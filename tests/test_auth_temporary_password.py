"""A temporary password (new account, reset, suspected compromise) must be changed at the first sign-in;
no periodic change for ordinary users, a regular one for administrators; no password in any trace."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from access.authn import services
from access.policy import Role
from audit.models import AccessEvent
from tests.auth_support import person, sign_in, sign_in_verified
from tests.helpers import audit_events
from tests.personas import PASSWORD

pytestmark = pytest.mark.django_db
NEW = "Vk8#qLz2!mWp7-Rt"


def test_a_temporary_password_forces_a_change_before_anything_else(client):
    admin = person("it.admin", Role.IT_ADMIN)
    user = person("new.dpo", Role.DPO)
    temporary = services.password_temporary_issue(user, by=admin, reason="new_account")
    response = sign_in(client, "new.dpo", temporary)
    assert response["Location"].startswith(reverse("password_change"))
    assert client.get(reverse("authn-sessions"))["Location"].startswith(reverse("password_change"))
    assert client.get("/api/patients/").json()["code"] == "password_change_required"
    form = {"old_password": temporary, "new_password1": "password123", "new_password2": "password123"}
    assert client.post(reverse("password_change"), form).status_code == 200  # too weak, common
    form = {"old_password": temporary, "new_password1": temporary, "new_password2": temporary}
    assert client.post(reverse("password_change"), form).status_code == 200  # the same again
    form = {"old_password": temporary, "new_password1": NEW, "new_password2": NEW}
    response = client.post(reverse("password_change"), form)
    assert response.status_code == 302
    user.staff.refresh_from_db()
    assert not user.staff.must_change_password and user.staff.password_changed_at is not None
    assert client.get(reverse("authn-sessions")).status_code == 200  # still signed in, new key
    assert audit_events(action="account", basis="password_change", actor_id=user.pk)
    [issued] = audit_events(action="account", basis="temporary_password")
    assert issued.actor_id == admin.pk and issued.details["account"] == "new.dpo"
    for event in AccessEvent.objects.using("audit").all().union(AccessEvent.objects.all()):
        text = f"{event.reason} {event.details} {event.resource_id}"
        assert temporary not in text and NEW not in text and PASSWORD not in text


def test_a_physician_gives_the_second_factor_then_changes_the_password(client):
    user = person("dr.temp", Role.PHYSICIAN)
    temporary = services.password_temporary_issue(user, by=None)
    sign_in_verified(client, user, password=temporary)
    assert client.get(reverse("web:patient_search"))["Location"].startswith(reverse("password_change"))


def test_a_suspected_compromise_ends_every_session(client):
    user = person("dr.compromised", Role.DPO)
    sign_in(client, "dr.compromised")
    other = Client()
    sign_in(other, "dr.compromised", address="192.0.2.99")
    services.password_compromise_suspected(user, by=None)
    for browser in (client, other):
        assert browser.get(reverse("authn-sessions")).status_code == 302
    assert sign_in(Client(), "dr.compromised", PASSWORD).status_code == 200  # old password: refused
    assert audit_events(action="account", basis="temporary_password", details__cause="compromise")


def test_no_periodic_change_for_ordinary_users_but_one_for_administrators(client, settings):
    long_ago = timezone.now() - timedelta(days=settings.DPI_ADMIN_PASSWORD_MAX_DAYS + 1)
    dpo = person("old.dpo", Role.DPO, password_changed_at=long_ago)
    admin = person("old.admin", Role.IT_ADMIN, password_changed_at=long_ago)
    assert not services.password_change_required(dpo)
    assert services.password_change_required(admin)
    response = sign_in(client, "old.admin")
    assert response["Location"].startswith(reverse("password_change"))


def test_a_wrong_current_password_counts_as_a_failed_sign_in(client, settings):
    settings.DPI_LOGIN_MAX_FAILURES = 2
    person("guessing.dpo", Role.DPO)
    sign_in(client, "guessing.dpo")
    form = {"old_password": "not-it", "new_password1": NEW, "new_password2": NEW}
    assert client.post(reverse("password_change"), form).status_code == 200
    response = client.post(reverse("password_change"), form)
    assert response.status_code == 302 and "_auth_user_id" not in client.session


@pytest.fixture(autouse=True)
def _privileged_roles_without_second_factor_here(monkeypatch):
    # This module tests sessions and passwords, not the second factor: privileged roles' second factor (issue
    # #13) is tested in tests/test_privileged_roles_need_a_second_factor.py.
    monkeypatch.setattr("access.gate.PRIVILEGED_ROLES", frozenset())
    monkeypatch.setattr("access.gate.PRIVILEGE_GROUPS", frozenset())  # their accounts are in their role's group
