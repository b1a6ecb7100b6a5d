"""The beat task disables accounts past their end date and accounts unused for DPI_ACCOUNT_INACTIVITY_DAYS;
both are traced and listed to the DPO; a re-enabled account gets a new inactivity period."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from access.authn import selectors, services, tasks
from access.policy import Role
from dpi.schedule import BEAT_SCHEDULE
from tests.auth_support import person, sign_in
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_the_beat_task_disables_ended_and_unused_accounts(settings):
    now = timezone.now()
    today = timezone.localdate()
    person("ended.contract", Role.NURSE, end_date=today - timedelta(days=1))
    ends_today = person("last.day", Role.NURSE, end_date=today)
    unused = person("never.here", Role.PHYSICIAN)
    User.objects.filter(pk=unused.pk).update(
        last_login=now - timedelta(days=settings.DPI_ACCOUNT_INACTIVITY_DAYS + 1),
        date_joined=now - timedelta(days=400))
    recent = person("recent.user", Role.PHYSICIAN)
    User.objects.filter(pk=recent.pk).update(last_login=now - timedelta(days=3), date_joined=now - timedelta(days=400))
    integration = person("lab.feed", Role.INTEGRATION)
    User.objects.filter(pk=integration.pk).update(date_joined=now - timedelta(days=400))

    assert {u.username for u in selectors.accounts_due_for_disabling()["past_end_date"]} == {"ended.contract"}

    result = tasks.accounts_disable.apply().get()
    assert result == {"contract_end": 1, "inactivity": 1}
    active = dict(User.objects.values_list("username", "is_active"))
    assert not active["ended.contract"] and not active["never.here"]
    assert active["last.day"] and active["recent.user"] and active["lab.feed"]
    assert {(d.user.username, d.reason) for d in selectors.disabled_accounts()} == {
        ("ended.contract", "contract_end"), ("never.here", "inactivity")}
    events = audit_events(action="account", basis__startswith="disabled:")
    assert {(e.details["account"], e.basis) for e in events} == {
        ("ended.contract", "disabled:contract_end"), ("never.here", "disabled:inactivity")}
    # idempotent: a second run changes nothing
    assert tasks.accounts_disable.apply().get() == {"contract_end": 0, "inactivity": 0}
    assert ends_today.pk


def test_a_disabled_account_loses_its_sessions_and_a_reactivated_one_starts_afresh(settings):
    user = person("going.away", Role.DPO)
    browser = Client()
    sign_in(browser, "going.away")
    User.objects.filter(pk=user.pk).update(last_login=timezone.now() - timedelta(days=365),
                                           date_joined=timezone.now() - timedelta(days=400))
    assert services.accounts_disable_inactive() == 1
    assert browser.get(reverse("authn-sessions")).status_code == 302
    services.account_reactivate(user, by=None)
    assert services.accounts_disable_inactive() == 0  # the inactivity clock restarted at re-activation
    assert selectors.disabled_accounts().count() == 0
    assert audit_events(action="account", basis="reactivated")


def test_the_tasks_are_scheduled():
    tasks_scheduled = {entry["task"] for entry in BEAT_SCHEDULE.values()}
    assert {"access.authn.tasks.accounts_disable", "access.authn.tasks.login_locks_release"} <= tasks_scheduled
