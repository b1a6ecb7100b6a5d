"""Landing pages (issue #22, item 7): the anonymous `/` goes straight to sign-in; the IT administrator and the
security officer land on what they can do (account locks, keyring, audit trail), not on "no page for your role";
other people are refused that page, and the refusal is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from access.authn.models import LoginThrottle
from access.authn.throttle import fingerprint
from access.policy import Role
from tests.helpers import audit_events
from tests.personas import make_user
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def test_anonymous_root_goes_straight_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", [Role.IT_ADMIN, Role.SECURITY_OFFICER])
def test_it_admin_and_security_officer_land_on_locks_keyring_and_audit(role):
    person = make_user(f"sec.{role.value}", role)
    locked = make_user("locked.nurse", Role.NURSE)
    locked.first_name, locked.last_name = "Anne", "Verrou"
    locked.save()

    LoginThrottle.objects.create(
        scope="account", key=fingerprint(locked.username), user=locked, failures=5, locked=True,
        locked_at=timezone.now(), blocked_until=timezone.now() + timedelta(minutes=30),
    )
    client = verified_client(person)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("web:security_home")
    page = response.content.decode()
    for section in ('id="locks"', 'id="keyring"', 'id="audit-chain"'):
        assert section in page
    assert "Anne Verrou" in page and "pas de page" not in page.lower()
    unlock = client.post(reverse("web:security_unlock", args=[locked.pk]), follow=True)
    assert unlock.status_code == 200
    row = LoginThrottle.objects.get(user=locked)
    assert not row.locked


@pytest.mark.parametrize("persona", ["physician", "reception", "dpo"])
def test_other_roles_are_refused_the_security_page_and_it_is_recorded(cast, persona):
    user = getattr(cast, persona)
    client = verified_client(user)
    assert client.get(reverse("web:security_home")).status_code == 403
    assert audit_events(actor_id=user.pk, basis="deny:page_role", outcome="denied")
