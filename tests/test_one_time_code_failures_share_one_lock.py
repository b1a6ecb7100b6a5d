"""Finding 5 of issue 13: wrong one-time codes at break-the-glass count towards the account's one throttle and
lock, like sign-in and fresh-code prompts, although the refused request rolls back."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from access import services as access_services
from access.authn import throttle
from access.models import EmergencyAccess
from tests.helpers import audit_events
from tests.ui_support import totp_code, totp_device, verified_client

pytestmark = pytest.mark.django_db

REASON = {"reason_category": "continuity", "reason_text": "Garde de nuit, patient instable, cardiologue absent."}


def test_break_the_glass_guessing_locks_the_account(cast):
    user = cast.other_physician
    totp_device(user)
    for _ in range(settings.DPI_LOGIN_MAX_FAILURES):
        with pytest.raises(ValidationError):
            access_services.break_glass_open(user=user, patient=cast.patient, otp_token="000000", **REASON)
    verdict = throttle.account_verdict(user)
    assert verdict.blocked and verdict.locked
    # locked: even the right code is refused now
    with pytest.raises(ValidationError):
        access_services.break_glass_open(user=user, patient=cast.patient,
                                         otp_token=totp_code(totp_device(user), steps_ahead=1), **REASON)
    assert not EmergencyAccess.objects.exists()
    assert len(audit_events(actor_id=user.pk, action="login_failure")) > settings.DPI_LOGIN_MAX_FAILURES


def test_fresh_code_and_break_the_glass_failures_add_up(cast):
    user = cast.other_physician
    client = verified_client(user)
    client.post("/accounts/second-factor/confirm/?next=/", {"token": "111111"})
    client.post(f"/patients/{cast.patient.pk}/break-glass/", REASON | {"otp_token": "000000"})
    row = throttle.LoginThrottle.objects.get(scope="account", key=throttle.fingerprint(user.username))
    assert row.failures == 2
