"""The landing page of the IT administrator and the security officer (issue #22, item 7).

Neither role reads patient data; what they do is keep the system's defences working: end account locks after
checking with the person, watch the keyring (which key versions still protect data and backups), and check
that the audit trail is intact. This page gathers those, instead of "no page for your role".
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from access.policy import Role
from dpi.web.permissions import _role_required

SECURITY_ROLES = frozenset({Role.IT_ADMIN, Role.SECURITY_OFFICER})

security_required = _role_required(
    lambda role: role in SECURITY_ROLES,
    what="this page is for the IT administrator and the security officer",
)


def _locks():
    from access.authn.models import LoginThrottle

    now = timezone.now()
    rows = (
        LoginThrottle.objects.filter(blocked_until__gt=now)
        .select_related("user")
        .order_by("-locked", "-blocked_until")[:100]
    )
    return [r for r in rows if r.locked or r.scope == LoginThrottle.Scope.ADDRESS or r.user_id]


def _keyring():
    from dpi.compliance.keys import keyring_status

    try:
        return {"rows": keyring_status(), "error": ""}
    except Exception as exc:  # noqa: BLE001 - a broken keyring is exactly what this page must show
        return {"rows": [], "error": str(exc)[:300]}


@security_required
def home(request):
    from audit.selectors import last_checkpoint, last_verification

    return render(
        request,
        "web/security_home.html",
        {
            "locks": _locks(),
            "keyring": _keyring(),
            "verification": last_verification(),
            "checkpoint": last_checkpoint(),
            "is_it_admin": request.dpi_role == Role.IT_ADMIN,
            "is_security_officer": request.dpi_role == Role.SECURITY_OFFICER,
        },
    )


@require_POST
@security_required
def unlock(request, user_id: int):
    from access.authn.services import account_unlock

    user = get_object_or_404(get_user_model(), pk=user_id)
    if account_unlock(user, by=request.user):
        messages.success(request, _("The account %(name)s is unlocked.") % {"name": user.get_username()})
    else:
        messages.info(request, _("The account %(name)s was not locked.") % {"name": user.get_username()})
    return redirect("web:security_home")


@require_POST
@security_required
def verify_audit(request):
    """Queue a verification of the audit chain (a Celery task: it may take minutes on a large trail)."""
    from audit.tasks import chain_verify

    chain_verify.delay()
    messages.success(request, _("Verification of the audit trail started; reload this page in a minute."))
    return redirect("web:security_home")
