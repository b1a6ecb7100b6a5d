"""The sign-in backend: Django's ModelBackend behind dpi's attempt limits.

Every password sign-in goes through it: the dpi sign-in page, the admin site's, ``Client.login`` in tests.
Permissions (``has_perm``...) are ModelBackend's.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> Any:
        from access.authn.services import password_login

        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        return password_login(request, username, password)
