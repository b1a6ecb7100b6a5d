"""Who may open which part of the browser UI, derived from the authorization matrix (access.policy).

These checks only decide which *pages* a role sees at all (a receptionist never reaches the chart page);
every read or write of patient data on those pages still goes through ``access.gate``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404

from access import gate
from access.policy import Action, Category, Role, allowed_by_matrix
from audit.services import event_record

# The reception admin site: roles whose administrative work needs no care relationship and who create
# and amend identities, encounters and appointments (admission staff, medical secretaries).
ADMIN_SITE_ROLES = frozenset(
    r for r in (Role.RECEPTION, Role.MEDICAL_SECRETARY)
    if allowed_by_matrix(r, Category.ADMINISTRATIVE, Action.CREATE)
)


def is_clinician(role: Role | None) -> bool:
    """A role that reads medical data at all: the chart and the patient search are for them."""
    return role is not None and role != Role.INTEGRATION and allowed_by_matrix(role, Category.MEDICAL, Action.VIEW)


def may_view_restricted(role: Role | None) -> bool:
    return role is not None and allowed_by_matrix(role, Category.RESTRICTED, Action.VIEW)


def is_verified(user: Any) -> bool:
    """The session carries a verified second factor (django-otp); plain users (no middleware) pass."""
    verified = getattr(user, "is_verified", None)
    return True if not callable(verified) else bool(verified())


def _sub_resources() -> dict[str, tuple[str, Any]]:
    from dpi.models import ClinicalNote, Document, Prescription

    return {"note_id": ("clinicalnote", ClinicalNote), "document_id": ("document", Document),
            "rx_id": ("prescription", Prescription)}


def asked_for(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a patient page's URL asks for: the sub-resource it names (a note, a document, a prescription) with
    its real patient, which may not be the patient of the URL (someone probing another patient's ids), else
    the page and the URL's patient. For the events of refusals made before the view looks anything up."""
    patient_id = kwargs.get("patient_id")
    for name, (resource_type, model) in _sub_resources().items():
        if name in kwargs:
            owner = model.objects.filter(pk=kwargs[name]).values_list("patient_id", flat=True).first()
            details = {"requested_patient_id": patient_id} if owner is not None and owner != patient_id else {}
            return {"patient_id": owner if owner is not None else patient_id, "resource_type": resource_type,
                    "resource_id": kwargs[name], "details": details}
    resource_id = next((v for k, v in kwargs.items() if k != "patient_id"), "")
    return {"patient_id": patient_id, "resource_type": "page", "resource_id": resource_id, "details": {}}


def record_refusal(request, role: Role | None, reason: str, kwargs: dict[str, Any]) -> None:
    """A page refused to the role is a denied access like any other: recorded (on the independent audit
    connection), naming the resource asked for and its patient when the page is about one."""
    asked = asked_for(kwargs)
    patient_id = asked["patient_id"]
    event_record(
        actor=request.user, actor_role=role.value if role else "", actor_unit=gate.unit_of(request.user),
        patient_id=patient_id, category=Category.MEDICAL if patient_id is not None else "",
        action=Action.VIEW if request.method in {"GET", "HEAD"} else Action.CREATE, outcome="denied",
        basis="deny:page_role", reason=reason, resource_type=asked["resource_type"],
        resource_id=asked["resource_id"], details={"path": request.path[:200], **asked["details"]},
    )


def _role_required(check: Callable[[Role | None], bool], *, what: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                # An anonymous request for a patient URL is recorded too (issue 13, finding 6).
                if "patient_id" in kwargs:
                    from access.decorators import refusal_record

                    asked = asked_for(kwargs)
                    refusal_record(request, basis="deny:anonymous", reason="not signed in",
                                   patient_id=asked["patient_id"], resource_type=asked["resource_type"],
                                   resource_id=asked["resource_id"])
                return redirect_to_login(request.get_full_path())
            role = gate.role_of(user)
            if not user.is_active or not check(role):
                record_refusal(request, role, what, kwargs)
                raise PermissionDenied(what)
            if gate.user_requires_second_factor(user) and not is_verified(user):
                record_refusal(request, role, SECOND_FACTOR_MISSING, kwargs)
                raise PermissionDenied(SECOND_FACTOR_MISSING)
            request.dpi_role = role
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


SECOND_FACTOR_MISSING = "a verified second factor is required"

# The second factor follows the same rule as everywhere else (access.gate.user_requires_second_factor: the role,
# and any privilege held besides it), which the sign-in enforces.
clinician_required = _role_required(is_clinician, what="this page is for care staff")
dpo_required = _role_required(lambda role: role == Role.DPO, what="this page is for the DPO")


def home_for(role: Role | None) -> str:
    """The URL name of a role's landing page."""
    if is_clinician(role):
        return "web:patient_search"
    if role in ADMIN_SITE_ROLES:
        return "admin:index"
    if role == Role.DPO:
        return "web:dpo_dashboard"
    if role in (Role.IT_ADMIN, Role.SECURITY_OFFICER):
        return "web:security_home"  # account locks, keyring, audit trail (dpi.web.views.security)
    return ""


def _record_not_under_patient(request, patient_id: int, action: Action, resource_type: str, resource_id: int,
                              owner_id: int | None, refused: str = "") -> None:
    """A note or document asked under another patient (or missing): recorded as a refused request naming the
    resource actually asked for and its real patient (what the DPO needs to see someone probing that patient),
    never as an allowed view of the patient in the URL. ``refused``: the refusal of the URL's patient itself."""
    details: dict = {"requested_patient_id": patient_id}
    if refused:
        details["requested_patient_refusal"] = refused
    event_record(
        actor=request.user, actor_role=str(request.dpi_role or ""), actor_unit=gate.unit_of(request.user),
        patient_id=owner_id, category=Category.MEDICAL, action=action, outcome="denied", basis="deny:not_found",
        reason=f"no such {resource_type} for this patient", resource_type=resource_type, resource_id=resource_id,
        details=details)


def _not_under_patient(request, patient_id: int, action: Action, resource_type: str, resource_id: int,
                       owner_id: int | None):
    _record_not_under_patient(request, patient_id, action, resource_type, resource_id, owner_id)
    raise Http404(f"no such {resource_type}")


def check_owner(request, patient_id: int, category, action: Action, resource_type: str, resource_id: int,
                owner_id: int | None) -> None:
    """Refused on the patient of the URL: the gate's refusal (recorded). Allowed there but the resource is
    missing or another patient's: a recorded not-found naming the resource. Never an allowed view first."""
    decision = gate.decide(request.user, patient_id=patient_id, category=category, action=action)
    if not decision.allowed:
        if owner_id is not None and owner_id != patient_id:
            # Another patient's resource: the event names it and its patient; the answer stays the refusal of
            # the URL's patient, as for a free id (it must tell nothing about the other patient).
            _record_not_under_patient(request, patient_id, action, resource_type, resource_id, owner_id,
                                      refused=decision.basis)
            gate.raise_if_refused(decision)
        gate.require(request.user, patient_id=patient_id, category=category, action=action,
                     resource_type=resource_type, resource_id=resource_id)
    if owner_id != patient_id:
        _not_under_patient(request, patient_id, action, resource_type, resource_id, owner_id)
