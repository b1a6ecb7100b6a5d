"""Helpers for the authentication tests (area "auth"): real sign-in through the pages, real TOTP codes."""

from __future__ import annotations

import time

from django.contrib.auth.models import Group, User
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.models import StaffProfile
from access.policy import Role
from tests.personas import PASSWORD, password_hash


def person(username: str, role: Role | None = None, **profile) -> User:
    """A staff account with the personas' password (faster than tests.personas.make_user: one hash in all)."""
    user = User.objects.create(username=username, password=password_hash(), first_name=username.split(".")[-1].title(),
                               last_name="Staff")
    if role is not None:
        group, _ = Group.objects.get_or_create(name=role.value)
        user.groups.add(group)
        StaffProfile.objects.create(user=user, role=role.value, **profile)
    return user


def totp_device(user, *, name: str = "phone") -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name=name, confirmed=True)


def totp_code(device: TOTPDevice) -> str:
    """A code the device will accept now (a code is single-use: each call gives the next acceptable one)."""
    device.refresh_from_db()
    now_t = int((time.time() - device.t0) // device.step) + device.drift
    t = max(now_t, device.last_t + 1)
    if t > now_t + device.tolerance:
        TOTPDevice.objects.filter(pk=device.pk).update(last_t=now_t - device.tolerance - 1)
        t = now_t
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = device.t0 + (t - device.drift) * device.step + device.step / 2
    return f"{totp.token():0{device.digits}d}"


def sign_in(client, username: str, password: str = PASSWORD, *, address: str = "192.0.2.10", follow=False):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address,
                       follow=follow)


def sign_in_verified(client, user, *, password: str = PASSWORD, address: str = "192.0.2.10") -> TOTPDevice:
    """Password then TOTP, through the real pages. Returns the device."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or totp_device(user)
    response = sign_in(client, user.username, password, address=address)
    assert response.status_code == 302, response.content[:500]
    response = client.post(reverse("authn-second-factor"), {"token": totp_code(device)}, REMOTE_ADDR=address)
    assert response.status_code == 302, response.content[:500]
    return device
