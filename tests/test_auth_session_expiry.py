"""Sessions: idle timeout and absolute lifetime enforced by the server (signed out and traced), sign-out,
and "sign out everywhere" deleting every session of the user."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from access.authn import services
from access.authn.models import SessionRecord
from access.policy import Role
from tests.auth_support import person, sign_in
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _age(client, key, seconds):
    session = client.session
    session[key] = session[key] - seconds
    session.save()


@pytest.fixture
def dpo(db):
    return person("the.dpo", Role.DPO)


def test_an_idle_session_is_signed_out_and_traced(dpo, client, settings):
    sign_in(client, "the.dpo")
    assert client.get(reverse("authn-sessions")).status_code == 200
    _age(client, services.LAST_SEEN, settings.DPI_SESSION_IDLE_SECONDS - 30)
    assert client.get(reverse("authn-sessions")).status_code == 200  # still within the idle limit
    _age(client, services.LAST_SEEN, settings.DPI_SESSION_IDLE_SECONDS + 1)
    response = client.get(reverse("authn-sessions"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert "expired=idle" in response["Location"]
    assert "_auth_user_id" not in client.session
    [event] = audit_events(action="logout", actor_id=dpo.pk)
    assert event.basis == "idle"
    response = client.get("/api/patients/")  # afterwards: an ordinary anonymous request
    assert response.status_code in {401, 403}


def test_the_absolute_lifetime_ends_even_an_active_session(dpo, client, settings):
    sign_in(client, "the.dpo")
    _age(client, services.AUTH_AT, settings.DPI_SESSION_ABSOLUTE_SECONDS + 1)
    response = client.get("/api/patients/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401 and response.json()["code"] == "session_expired_absolute"
    assert [e.basis for e in audit_events(action="logout", actor_id=dpo.pk)] == ["absolute"]


def test_sign_out_is_traced_and_post_only(dpo, client):
    sign_in(client, "the.dpo")
    assert client.get(reverse("logout")).status_code == 200  # a confirmation page, no sign-out on GET
    assert "_auth_user_id" in client.session
    client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session
    assert [e.basis for e in audit_events(action="logout", actor_id=dpo.pk)] == ["user"]


def test_sign_out_everywhere_ends_every_session(dpo, client):
    browsers = [Client() for _ in range(3)]
    for i, browser in enumerate(browsers):
        sign_in(browser, "the.dpo", address=f"192.0.2.{i + 1}")
    sign_in(client, "the.dpo")
    other = person("someone.else", Role.DPO)
    bystander = Client()
    sign_in(bystander, "someone.else")
    assert SessionRecord.objects.filter(user=dpo).count() == 4
    assert len(services.sessions_of(dpo)) == 4
    client.post(reverse("authn-sessions"))
    for browser in [client, *browsers]:
        assert browser.get(reverse("authn-sessions")).status_code == 302
    assert not SessionRecord.objects.filter(user=dpo).exists()
    assert bystander.get(reverse("authn-sessions")).status_code == 200
    assert Session.objects.count() >= 1
    [event] = audit_events(action="logout", basis="everywhere")
    assert event.actor_id == dpo.pk and event.details["sessions"] == 4
    assert other.pk != dpo.pk


def test_a_role_change_ends_the_sessions(client):
    user = person("changing.role", Role.DPO)
    sign_in(client, "changing.role")
    profile = user.staff
    profile.role = Role.SECURITY_OFFICER.value
    profile.save()
    assert client.get(reverse("authn-sessions")).status_code == 302


@pytest.fixture(autouse=True)
def _privileged_roles_without_second_factor_here(monkeypatch):
    # This module tests sessions and passwords, not the second factor: privileged roles' second factor (issue
    # #13) is tested in tests/test_privileged_roles_need_a_second_factor.py.
    monkeypatch.setattr("access.gate.PRIVILEGED_ROLES", frozenset())
    monkeypatch.setattr("access.gate.PRIVILEGE_GROUPS", frozenset())  # their accounts are in their role's group
