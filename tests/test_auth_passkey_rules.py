"""dpi's rules around passkeys (access.authn.passkeys): adding one needs a verified session; the passkey ceremony
is reachable while the second factor is pending (it is one); passwordless sign-in is off; resetting a user's
second factor removes their passkeys too."""

import pytest
from django.test import Client
from django.urls import reverse
from django_otp_webauthn.models import WebAuthnCredential

from access.authn import services
from access.policy import Role
from tests.auth_support import person
from tests.personas import PASSWORD
from tests.ui_support import totp_device, verified_client

pytestmark = pytest.mark.django_db

BEGIN_REGISTRATION = reverse("otp_webauthn:credential-registration-begin")
BEGIN_AUTHENTICATION = reverse("otp_webauthn:credential-authentication-begin")


def _password_only(user) -> Client:
    totp_device(user)
    client = Client()
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and reverse("authn-second-factor") in response["Location"]
    return client


def test_adding_a_passkey_needs_a_verified_session():
    user = person("dr.key", Role.PHYSICIAN)
    assert _password_only(user).post(BEGIN_REGISTRATION).status_code == 403
    response = verified_client(user).post(BEGIN_REGISTRATION)
    assert response.status_code == 200 and response.json()["rp"]["id"] == "testserver"


def test_the_passkey_ceremony_is_reachable_while_the_second_factor_is_pending():
    user = person("dr.pending", Role.PHYSICIAN)
    client = _password_only(user)
    assert client.get(reverse("web:patient_search")).status_code == 302  # everything else still waits
    response = client.post(BEGIN_AUTHENTICATION)
    assert response.status_code == 200 and response.json()["rpId"] == "testserver"


def test_passwordless_sign_in_is_off():
    assert Client().post(BEGIN_AUTHENTICATION).status_code == 403


def test_a_second_factor_reset_removes_the_passkeys():
    user = person("dr.lost", Role.PHYSICIAN)
    WebAuthnCredential.objects.create(user=user, name="key", confirmed=True, credential_id=b"id", public_key=b"k",
                                      sign_count=0)
    assert services.has_second_factor_device(user)
    services.second_factor_reset(user, by=None)
    assert not WebAuthnCredential.objects.filter(user=user).exists()
