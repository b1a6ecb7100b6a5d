"""Authentication guard for maintenance providers: no sign-in outside an approved maintenance window.

Listed first in ``AUTHENTICATION_BACKENDS``. It never signs anyone in: for a maintenance account with the right
password outside its window it raises ``PermissionDenied``, which makes ``django.contrib.auth.authenticate``
stop at once (no later backend is tried) and report a failed login. Every other case returns ``None`` and
the next backend (the project's ModelBackend) authenticates as usual.

``get_user`` is ModelBackend's: a session naming this backend (``force_login`` and ``login`` without a backend
pick the first one listed) still resolves to its user.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from dpi.compliance.services import is_maintenance_account, maintenance_login_allowed, maintenance_login_refused


class MaintenanceWindowBackend(BaseBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        model = get_user_model()
        username = username if username is not None else kwargs.get(model.USERNAME_FIELD)
        if not username or password is None:
            return
        try:
            user = model._default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            return
        if not is_maintenance_account(user):
            return
        # A wrong password is an ordinary failure (counted by the next backend); only a correct one outside
        # the window is the event the DPO needs to see.
        if not user.check_password(password):
            return
        now = timezone.now()
        if maintenance_login_allowed(user, now):
            return
        maintenance_login_refused(user, now=now)
        raise PermissionDenied("maintenance account outside an approved window")

    def get_user(self, user_id):
        return ModelBackend().get_user(user_id)
