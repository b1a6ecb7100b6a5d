"""Demo accounts: one per role, with secrets generated for *this* install, never in production.

The seed creates ``demo.<role>`` accounts with a random password and a random TOTP secret each (the
``secrets`` module, not the seed's deterministic generator: two installs never share them). They are printed
once when created and written to ``var/secrets/demo_accounts.json`` (directory 0700, file 0600, outside the
database); ``manage.py demo_accounts`` prints them again.

Guards (issue #13, finding 10):

* with ``DPI_PRODUCTION=1`` the seed and the demo accounts are refused: ``seed`` stops, and
  :class:`DemoAccountsRefusedBackend` refuses any sign-in of a ``demo.`` account;
* ``make run`` refuses to listen beyond the loopback interface while active demo accounts exist
  (``manage.py demo_accounts --disable`` disables them).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied

PREFIX = "demo."


def secrets_path() -> Path:
    return Path(settings.VAR_DIR) / "secrets" / "demo_accounts.json"


def refuse_in_production(what: str = "demo data") -> None:
    if settings.PRODUCTION:
        raise ImproperlyConfigured(
            f"{what} refused: DPI_PRODUCTION=1. Demo accounts and synthetic patients never go into production."
        )


def new_password() -> str:
    """About 120 bits, in groups a person can retype: ``Xk3f-9Pq2-...``."""
    raw = secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
    return "-".join(raw[i : i + 6] for i in range(0, 24, 6))


def new_totp_key() -> str:
    """A TOTP key (hex, 20 random bytes) as django-otp stores it."""
    return secrets.token_hex(20)


def totp_base32(key_hex: str) -> str:
    return base64.b32encode(bytes.fromhex(key_hex)).decode()


def load() -> dict[str, dict[str, str]]:
    """``{username: {"role", "password", "totp_key"}}`` of this install (empty if never seeded here)."""
    path = secrets_path()
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def save(accounts: dict[str, dict[str, str]]) -> Path:
    path = secrets_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(accounts, fh, indent=1, sort_keys=True)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def active_accounts():
    """Demo accounts that can still sign in."""
    from django.contrib.auth.models import User

    return User.objects.filter(username__startswith=PREFIX, is_active=True)


def describe(accounts: dict[str, dict[str, str]]) -> list[str]:
    """Lines for a terminal: user name, role, password and TOTP secret (base32, for an authenticator app)."""
    lines = []
    for username in sorted(accounts):
        entry = accounts[username]
        lines.append(
            f"  {username:26} role={entry['role']:18} password={entry['password']}  "
            f"TOTP secret={totp_base32(entry['totp_key'])}"
        )
    return lines


class DemoAccountsRefusedBackend:
    """First authentication backend: with ``DPI_PRODUCTION=1`` a ``demo.`` account never signs in."""

    def authenticate(self, request, username: str | None = None, **kwargs: Any):
        if settings.PRODUCTION and username and username.lower().startswith(PREFIX):
            raise PermissionDenied("demo accounts are refused in production")
        return

    # No get_user: this backend never signs anyone in, and Django's test client (force_login) takes the first
    # backend that has one, which must be the one that loads users.
