"""First sign-in without a device: enrolment with an inline QR code (no external service), a first code,
then single-use backup codes."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.policy import Role
from tests.auth_support import person, sign_in, totp_code
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_first_sign_in_enrols_then_backup_codes_work_once(client):
    user = person("dr.new", Role.PHYSICIAN)
    response = sign_in(client, "dr.new")
    assert response["Location"].startswith(reverse("authn-enrol"))
    page = client.get(reverse("authn-enrol"))
    html = page.content.decode()
    assert page.status_code == 200 and "<svg" in html and "<img" not in html.split("<main")[1]
    assert "http" not in re.search(r"<svg.*?</svg>", html, re.S).group(0).replace("http://www.w3.org", "")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert client.post(reverse("authn-enrol"), {"token": "123456"}).status_code == 403
    # django-otp's own delay after a wrong code (1 s): let it pass
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=timezone.now() - timedelta(seconds=5))
    response = client.post(reverse("authn-enrol"), {"token": totp_code(device)})
    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert audit_events(action="account", basis="otp_enrolled", actor_id=user.pk)
    assert client.get(reverse("web:patient_search")).status_code != 302  # verified now

    # a later sign-in with a backup code: accepted once, refused the second time
    client.post(reverse("logout"))
    sign_in(client, "dr.new")
    assert client.post(reverse("authn-second-factor"), {"token": codes[0]}).status_code == 302
    assert StaticToken.objects.filter(device__user=user).count() == 9
    client.post(reverse("logout"))
    sign_in(client, "dr.new")
    assert client.post(reverse("authn-second-factor"), {"token": codes[0]}).status_code == 403


def test_an_enrolled_user_cannot_enrol_a_new_device_without_a_code(client):
    user = person("dr.enrolled", Role.PHYSICIAN)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    sign_in(client, "dr.enrolled")
    response = client.get(reverse("authn-enrol"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("authn-second-factor"))
    assert not TOTPDevice.objects.filter(user=user, confirmed=False).exists()
