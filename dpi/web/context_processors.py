"""Template context for every page: the idle-lock timing read by dpi.js, and the role's navigation.

Enabled in settings.TEMPLATES (``dpi.web.context_processors.ui``).
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from access import gate
from access.policy import Role
from audit import labels
from dpi.web.permissions import ADMIN_SITE_ROLES, is_clinician

ROLE_LABELS = {role: labels.ROLES[role.value] for role in Role}


def idle_warning_seconds(idle: int) -> int:
    """How long before the lock the warning appears: a minute, or a third of a short timeout."""
    return min(60, max(1, idle // 3))


def ui(request) -> dict:
    idle = settings.DPI_SESSION_IDLE_SECONDS
    context = {
        "dpi_idle_seconds": idle,
        "dpi_idle_warning_seconds": idle_warning_seconds(idle),
        "dpi_nav": [],
        "dpi_role": "",
    }
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    role = gate.role_of(user)
    nav = []
    if is_clinician(role):
        nav.append((_("My unit"), reverse("web:census")))
        nav.append((_("Patients"), reverse("web:patient_search")))
    if role in ADMIN_SITE_ROLES:
        nav.append((_("Reception"), reverse("admin:index")))
    if role == Role.DPO:
        nav += [
            (_("Dashboard"), reverse("web:dpo_dashboard")),
            (_("Alerts"), reverse("web:dpo_alerts")),
            (_("Break-the-glass"), reverse("web:dpo_emergency_list")),
            (_("Access log"), reverse("web:dpo_access_log")),
            (_("Conformity"), reverse("web:dpo_conformity")),
        ]
    if role in (Role.IT_ADMIN, Role.SECURITY_OFFICER):
        nav.append((_("Security"), reverse("web:security_home")))
    path = request.path
    context["dpi_nav"] = [(label, url, path.startswith(url) and (url != "/dpo/" or path == url))
                          for label, url in nav]
    context["dpi_role"] = ROLE_LABELS.get(role, role.value) if role else ""
    return context
