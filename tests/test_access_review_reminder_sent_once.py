"""The weekly reminder of an open authorization review is sent once even when its periodic task runs twice
(a beat takeover or a redelivered task, docs/deployment.md), also from two workers at the same time."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connections
from django.utils import timezone

from access import services
from access.tasks import review_remind

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def campaign(cast, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cast.dpo.email = "dpo@hopital.example"
    cast.dpo.save(update_fields=["email"])
    started = services.review_campaign_start(actor=cast.dpo, name="Revue 2026",
                                             due_at=timezone.now() + timedelta(days=30))
    mail.outbox.clear()
    return started


def test_the_task_run_twice_sends_one_reminder(campaign):
    assert review_remind() > 0
    assert review_remind() == 0
    assert len(mail.outbox) == 1


def test_two_workers_at_once_send_one_reminder(campaign):
    counts: list[int] = []

    def worker() -> None:
        try:
            counts.append(services.review_remind(campaign=campaign))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(counts)[0] == 0 and sorted(counts)[1] > 0
    assert len(mail.outbox) == 1


def test_the_next_days_run_reminds_again(campaign):
    assert services.review_remind(campaign=campaign) > 0
    later = timezone.now() + services.REVIEW_REMIND_GAP + timedelta(minutes=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: later)
        assert services.review_remind(campaign=campaign) > 0
    assert len(mail.outbox) == 2
