"""Attempt limits: a growing delay, then a lock after DPI_LOGIN_MAX_FAILURES, per account and per address;
the same answer whether or not the account exists; lock and unlock traced; the DPO sees locked accounts."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from access.authn import selectors, services, throttle
from access.authn.forms import BLOCKED, INVALID_LOGIN
from access.authn.models import LoginThrottle
from access.policy import Role
from tests.auth_support import person, sign_in
from tests.helpers import audit_events
from tests.personas import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast(db):
    """The few accounts these tests need (see tests.personas for the full cast)."""

    class Cast:
        physician = person("dr.house", Role.PHYSICIAN)
        nurse = person("nurse.joy", Role.NURSE)
        reception = person("front.desk", Role.RECEPTION)
        dpo = person("the.dpo", Role.DPO)
        dim = person("dr.dim", Role.DIM)
        outsider = person("no.role")

    return Cast


def errors(response):
    return [str(e) for e in response.context["form"].non_field_errors()]


def test_it_locks_after_the_configured_failures_and_a_right_password_then_fails_too(cast, client, settings):
    settings.DPI_LOGIN_MAX_FAILURES = 3
    settings.DPI_LOGIN_DELAY_SECONDS = 0
    for _ in range(3):
        assert sign_in(client, "dr.house", "wrong-password-1", address="198.51.100.1").status_code == 200
    response = sign_in(client, "dr.house", PASSWORD, address="198.51.100.2")
    assert response.status_code == 200
    assert errors(response) == [str(BLOCKED)]
    assert "_auth_user_id" not in client.session
    [lock] = audit_events(action="account", basis="lock", actor_id=cast.physician.pk)
    assert lock.outcome == "denied" and lock.details["scope"] == "account"
    assert [r.user for r in selectors.locked_accounts()] == [cast.physician]


def test_unknown_and_known_accounts_get_the_same_answers(cast, client, settings):
    settings.DPI_LOGIN_DELAY_SECONDS = 60  # longer than the test: the answers do not depend on its speed
    known = [errors(sign_in(client, "dr.house", "Wrong-Guess-123!", address="198.51.100.7")) for _ in range(6)]
    unknown = [errors(sign_in(client, "dr.nobody", "Wrong-Guess-123!", address="198.51.100.8")) for _ in range(6)]
    assert known == unknown
    assert known[0] == [str(INVALID_LOGIN)]
    assert known[-1] == [str(BLOCKED)]
    failures = audit_events(action="login_failure")
    assert {e.details["account_known"] for e in failures} == {True, False}
    for event in failures:  # neither the typed password nor an unknown typed name is kept
        assert "Wrong-Guess" not in str(event.details) and "dr.nobody" not in str(event.details)
        assert event.actor_username in {"dr.house", ""}


def test_the_delay_grows_with_each_failure(cast):
    now = timezone.now()
    delays = []
    for _ in range(4):
        failed_at = now
        attempt = throttle.Attempt(username="nurse.joy", address=None, user=cast.nurse, now=now)
        assert not attempt.verdict().blocked
        verdict = attempt.failed()
        delays.append(verdict.retry_after)
        now = now + timedelta(seconds=verdict.retry_after + 1)
    assert delays[0] == 0
    assert delays[1] < delays[2] < delays[3]
    # an attempt during the delay is refused without looking at the password
    during = failed_at + timedelta(seconds=1)
    attempt = throttle.Attempt(username="nurse.joy", address=None, user=cast.nurse, now=during)
    assert attempt.verdict().blocked


def test_an_address_spraying_many_accounts_is_locked(cast, client, settings):
    settings.DPI_LOGIN_ADDRESS_MAX_FAILURES = 6
    settings.DPI_LOGIN_DELAY_SECONDS = 0
    for i in range(6):
        sign_in(client, f"guess.{i}", "Wrong-Guess-123!", address="203.0.113.66")
    # even a right password from that address is refused now; from elsewhere it works
    assert errors(sign_in(client, "front.desk", PASSWORD, address="203.0.113.66")) == [str(BLOCKED)]
    assert sign_in(client, "front.desk", PASSWORD, address="203.0.113.67").status_code == 302
    assert [r.key for r in selectors.locked_addresses()] == ["203.0.113.66"]


def test_an_expired_lock_is_released_and_traced_and_one_more_failure_relocks(cast, settings):
    settings.DPI_LOGIN_DELAY_SECONDS = 0
    for _ in range(settings.DPI_LOGIN_MAX_FAILURES):
        services.password_login(None, "dr.house", "nope")
    row = LoginThrottle.objects.get(scope="account", user=cast.physician)
    assert row.locked
    LoginThrottle.objects.filter(pk=row.pk).update(blocked_until=timezone.now() - timedelta(seconds=1))
    assert throttle.expired_locks_release() == 1
    assert audit_events(action="account", basis="unlock", actor_id=cast.physician.pk)
    assert selectors.locked_accounts().count() == 0
    services.password_login(None, "dr.house", "nope")
    row.refresh_from_db()
    assert row.locked and row.lock_count == 2
    assert row.blocked_until - row.locked_at == timedelta(minutes=2 * settings.DPI_LOGIN_LOCK_MINUTES)


def test_an_administrator_unlocks_an_account(cast, settings):
    for _ in range(settings.DPI_LOGIN_MAX_FAILURES):
        services.password_login(None, "nurse.joy", "nope")
    assert selectors.locked_accounts().count() == 1
    assert services.account_unlock(cast.nurse, by=cast.dpo)
    assert selectors.locked_accounts().count() == 0
    [event] = audit_events(action="account", basis="unlock")
    assert event.actor_id == cast.dpo.pk and event.details["account"] == "nurse.joy"
    assert services.password_login(None, "nurse.joy", PASSWORD) == cast.nurse


def test_a_success_resets_the_account_counter(cast):
    for _ in range(2):
        services.password_login(None, "dr.dim", "nope")
    LoginThrottle.objects.filter(scope="account", user=cast.dim).update(blocked_until=None)
    assert services.password_login(None, "dr.dim", PASSWORD) == cast.dim
    assert LoginThrottle.objects.get(scope="account", user=cast.dim).failures == 0
    [ok] = audit_events(action="login", actor_id=cast.dim.pk)
    assert ok.outcome == "allowed" and ok.basis == "password"


def test_disabled_and_ended_accounts_get_the_wrong_password_answer(cast, client):
    User.objects.filter(pk=cast.outsider.pk).update(is_active=False)
    assert errors(sign_in(client, "no.role", PASSWORD, address="198.51.100.30")) == [str(INVALID_LOGIN)]
    profile = cast.reception.staff
    profile.end_date = timezone.localdate() - timedelta(days=1)
    profile.save()
    assert errors(sign_in(client, "front.desk", PASSWORD, address="198.51.100.31")) == [str(INVALID_LOGIN)]
    assert {e.basis for e in audit_events(action="login_failure")} == {"inactive", "contract_ended"}


def test_the_client_address_comes_from_trusted_proxies_only(rf, settings):
    settings.DPI_TRUSTED_PROXIES = ["10.0.0.5"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9")
    assert throttle.client_address(request) == "198.51.100.9"
    spoofed = rf.get("/", REMOTE_ADDR="198.51.100.77", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert throttle.client_address(spoofed) == "198.51.100.77"


def test_a_password_in_the_url_signs_nobody_in(cast, client):
    response = client.get(reverse("login"), {"username": "dr.house", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_the_beat_task_releases_locks_and_forgets_sprayed_names(cast, settings):
    from access.authn import tasks

    for _ in range(settings.DPI_LOGIN_MAX_FAILURES):
        services.password_login(None, "dr.house", "nope")
    services.password_login(None, "sprayed.name", "nope")
    LoginThrottle.objects.update(blocked_until=timezone.now() - timedelta(seconds=1),
                                 last_failure_at=timezone.now() - timedelta(days=2))
    result = tasks.login_locks_release.apply().get()
    assert result["released"] == 1 and result["purged"] == 1
    assert list(LoginThrottle.objects.values_list("user__username", flat=True)) == ["dr.house"]
