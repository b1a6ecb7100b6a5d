"""1,000 wrong passwords against one account from several addresses: none succeeds, the lock holds (even for
the right password), and another user still signs in. Once locked, no hashing work is spent."""

from unittest import mock

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher

from access.authn import selectors
from access.authn.forms import BLOCKED
from access.authn.models import LoginThrottle
from access.policy import Role
from tests.auth_support import person, sign_in
from tests.helpers import audit_events
from tests.personas import PASSWORD

pytestmark = pytest.mark.django_db

ADDRESSES = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(40)]  # 40 addresses, 25 guesses each


def test_a_thousand_wrong_passwords_from_many_addresses_never_get_in(client, settings):
    target = person("dr.target", Role.PHYSICIAN)
    other = person("nurse.other", Role.NURSE)
    verify = Argon2PasswordHasher.verify
    with mock.patch.object(Argon2PasswordHasher, "verify", autospec=True, side_effect=verify) as hashed:
        for i in range(1000):
            # every 100th guess is the right password: it must fail like the others once the lock holds
            guess = PASSWORD if i % 100 == 99 else f"Guess-{i:04d}-x!"
            response = sign_in(client, "dr.target", guess, address=ADDRESSES[i % len(ADDRESSES)])
            assert response.status_code == 200, f"attempt {i} signed in"
            assert "_auth_user_id" not in client.session
        # hashing stopped with the lock (a spy on the real hasher, not a replacement: the work is real)
        assert hashed.call_count <= settings.DPI_LOGIN_MAX_FAILURES
    assert [str(e) for e in response.context["form"].non_field_errors()] == [str(BLOCKED)]
    row = LoginThrottle.objects.get(scope="account", user=target)
    assert row.locked and row.lock_count == 1
    assert [r.user for r in selectors.locked_accounts()] == [target]
    assert len(audit_events(action="login_failure", actor_id=target.pk)) == 1000
    # another user, from an address of their own, signs in normally
    assert sign_in(client, "nurse.other", address="192.0.2.200").status_code == 302
    assert client.session["_auth_user_id"] == str(other.pk)
