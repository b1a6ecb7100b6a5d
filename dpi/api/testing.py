"""Helpers for tests and benchmarks of the API: a client with a token, a verified browser session."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from django.contrib.auth.models import User

from dpi.api import services
from dpi.api.models import ApiClient
from dpi.api.scopes import ALL_SCOPES

_names = itertools.count(1)


def make_api_client(
    *,
    scopes: list[str] | tuple[str, ...] = ALL_SCOPES,
    name: str | None = None,
    on_behalf: bool = False,
    rate_per_minute: int | None = None,
) -> tuple[ApiClient, str]:
    """An API client (with its integration service account) and a token carrying all its scopes."""
    client = services.api_client_create(
        actor=None,
        name=name or f"test-client-{next(_names)}-{uuid.uuid4().hex[:8]}",
        scopes=list(scopes),
        may_act_on_behalf=on_behalf,
        rate_per_minute=rate_per_minute,
    )
    _, raw = services.api_token_issue(actor=None, client=client)
    return client, raw


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def request_id() -> str:
    """A fresh X-Request-ID: finds a request's access events (denied ones are committed, and outlive the test).
    A dashed UUID, which the server always keeps (its groups hold no NIR-like run of 13 digits)."""
    return str(uuid.uuid4())


def verified_login(http_client, user: User) -> None:
    """Sign ``user`` in on a test client with a verified TOTP second factor (django-otp)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    http_client.force_login(user)
    session = http_client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def post_json(http_client, path: str, data: Any, **headers: str):
    return http_client.post(path, data=json.dumps(data), content_type="application/json", headers=headers)


def patch_json(http_client, path: str, data: Any, **headers: str):
    return http_client.patch(path, data=json.dumps(data), content_type="application/json", headers=headers)
