"""Sensitive actions (break-the-glass, exports, role changes) need a one-time code typed in the last
DPI_FRESH_OTP_SECONDS: ``recent_otp_check`` and the ``require_fresh_otp`` decorator."""

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django_otp.middleware import OTPMiddleware
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.authn import services
from access.authn.decorators import require_fresh_otp
from access.policy import Role
from tests.auth_support import person, sign_in_verified, totp_code, totp_device
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_issuing_backup_codes_needs_a_fresh_code(client):
    user = person("dr.fresh", Role.PHYSICIAN)
    device = sign_in_verified(client, user)
    response = client.post(reverse("authn-backup-codes"))
    assert response.status_code == 403 and b'name="token"' in response.content
    response = client.post(reverse("authn-backup-codes"), {"otp_token": "000000"})
    assert response.status_code == 403
    assert audit_events(action="login_failure", basis="fresh_otp", actor_id=user.pk)
    # django-otp's own delay after a wrong code (1 s): let it pass
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=timezone.now() - timedelta(seconds=5))
    response = client.post(reverse("authn-backup-codes"), {"otp_token": totp_code(device)})
    assert response.status_code == 200 and len(response.context["codes"]) == 10
    # still fresh: no code needed for a while
    assert client.post(reverse("authn-backup-codes")).status_code == 200
    assert audit_events(action="login", basis="fresh_otp", actor_id=user.pk)


def test_the_confirm_page_marks_the_session_fresh_and_goes_back(client):
    user = person("dr.confirm", Role.PHYSICIAN)
    device = sign_in_verified(client, user)
    target = reverse("authn-backup-codes")
    response = client.post(reverse("authn-fresh-otp") + f"?next={target}", {"token": totp_code(device)})
    assert response.status_code == 302 and response["Location"] == target
    assert services.has_fresh_otp(client)


def test_the_decorator_answers_json_to_the_api_and_expires(rf, settings):
    user = person("api.user", Role.PHYSICIAN)
    device = totp_device(user)

    @require_fresh_otp
    def export(request):
        return HttpResponse("exported")

    request = rf.post("/api/export/", {})
    request.session = SessionStore()
    OTPMiddleware._init_user_fields(user)
    request.user = user
    response = export(request)
    assert response.status_code == 403 and b"fresh_otp_required" in response.content
    assert services.recent_otp_check(request, totp_code(device))
    assert export(request).content == b"exported"
    request.session[services.FRESH_OTP_AT] -= settings.DPI_FRESH_OTP_SECONDS + 1
    assert export(request).status_code == 403
