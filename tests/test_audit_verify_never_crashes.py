"""verify_audit never crashes (issue #14): a verification that cannot finish, whatever the reason, is recorded as a
failed run with its reason and exits non-zero, and the DPO dashboard shows that latest run's real state and age
(not the previous "verified"). A run that cannot even be recorded makes the command fail loudly."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from audit import selectors, verification
from audit.models import VerificationRun
from tests.test_audit_support import fresh_trail, signed, stored_run, verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def verified_yesterday(now):
    fresh_trail()
    signed(3)
    return stored_run(started_at=now - timedelta(hours=20), finished_at=now - timedelta(hours=20),
                                          ok=True, events_checked=3)


def test_a_database_error_mid_scan_is_a_recorded_failed_run_shown_on_the_dashboard(cast, verified_yesterday,
                                                                                  monkeypatch):
    client = verified_client(cast.dpo)
    html = client.get("/dpo/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "chain verified" in html and "20\xa0hours ago" in html

    # A real PostgreSQL error inside the verifier's snapshot transaction (an unknown function in the event query).
    monkeypatch.setattr(verification, "CANONICAL_SQL", "pg_catalog.no_such_function(e.id)")
    with pytest.raises(CommandError, match="could not complete: UndefinedFunction"):
        call_command("verify_audit", stdout=io.StringIO())
    run = selectors.last_verification()
    assert run.pk != verified_yesterday.pk and not run.ok and not run.completed
    assert "no_such_function" in run.message

    html = client.get("/dpo/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "the verification could not complete" in html and "chain verified" not in html
    assert "0\xa0minutes ago" in html and "20\xa0hours" not in html  # the latest run's own age


def test_a_run_that_cannot_be_recorded_fails_the_command(verified_yesterday, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise RuntimeError("database read-only")

    monkeypatch.setattr(VerificationRun, "save", refuse)
    with pytest.raises(CommandError, match="could not be recorded for the DPO dashboard: database read-only"):
        call_command("verify_audit", stdout=io.StringIO())
    assert selectors.last_verification().pk == verified_yesterday.pk
