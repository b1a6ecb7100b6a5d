"""The patient access report, downloadable by the data protection officer (DPO) only.

Each download is itself an access event (action ``export``); a refused attempt gets 403 and a denied event.
"""

from __future__ import annotations

import json

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from access.authn.decorators import require_fresh_otp
from access.decorators import refusal_record
from access.gate import role_of  # role lookup only (views may use it; selectors stay policy-free)
from access.policy import Role
from audit import reports, selectors
from audit.models import AccessEvent
from audit.services import event_record

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf", "json": "application/fhir+json"}


def _record(request, *, patient_id: int, fmt: str, allowed: bool, role: str, count: int | None = None) -> None:
    details = {"format": fmt, "report": "patient_access"}
    if count is not None:
        details["events"] = count
    event_record(
        action=AccessEvent.Action.EXPORT,
        outcome=AccessEvent.Outcome.ALLOWED if allowed else AccessEvent.Outcome.DENIED,
        actor=request.user, actor_role=role, patient_id=patient_id, category="administrative",
        resource_type="access_report", basis="dpo:access_report" if allowed else "deny:not_dpo",
        reason="" if allowed else "only the data protection officer downloads access reports", details=details,
    )


@require_GET
def patient_access_report(request, patient_id: str, fmt: str):
    pid = int(patient_id)
    if not request.user.is_authenticated:
        refusal_record(request, basis="deny:anonymous", reason="not signed in", patient_id=pid,
                       resource_type="access_report", action=AccessEvent.Action.EXPORT)
        return redirect_to_login(request.get_full_path())
    role = role_of(request.user)
    role_name = role.value if role is not None else ""
    if role != Role.DPO:
        _record(request, patient_id=pid, fmt=fmt, allowed=False, role=role_name)
        raise PermissionDenied("only the data protection officer downloads access reports")
    return _report(request, pid, fmt, role_name)


@require_fresh_otp
def _report(request, pid: int, fmt: str, role_name: str):
    """An export of patient data: a one-time code typed in the last minutes (issue 13, finding 4)."""
    with transaction.atomic():
        # Recorded first, in the same transaction: the report lists its own download, and a report that
        # fails to render leaves no trace of a download that did not happen.
        _record(request, patient_id=pid, fmt=fmt, allowed=True, role=role_name)
        events = selectors.patient_access_report(patient_id=pid)
        flags = selectors.integrity_flags(events)  # rows the integrity check found forged: marked, not shown as genuine
        if fmt == "csv":
            body: bytes = reports.to_csv(events, flags=flags).encode("utf-8-sig")  # BOM: spreadsheets read UTF-8
        elif fmt == "pdf":
            body = reports.to_pdf(events, patient_id=pid, chain_note=_chain_note(), flags=flags,
                                  printed_by=request.user.get_full_name() or request.user.get_username())
        else:
            body = json.dumps(reports.to_fhir_bundle(events, patient_id=pid, flags=flags), ensure_ascii=False).encode()
    response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="access-report-patient-{pid}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


def _chain_note() -> str:
    run = selectors.last_verification()
    if run is None:
        return _("These traces cannot be changed and are chained by a cryptographic hash; no integrity check has "
                 "run yet.")
    when = formats.date_format(timezone.localtime(run.finished_at), "SHORT_DATETIME_FORMAT")
    if run.ok:
        return _("These traces cannot be changed and are chained by a cryptographic hash. Last integrity check: "
                 "%(when)s, intact.") % {"when": when}
    return _("These traces cannot be changed and are chained by a cryptographic hash. Last integrity check: "
             "%(when)s, BROKEN.") % {"when": when}


@require_GET
def verification_report(request, fmt: str):
    """The signed verification report (latest ``verify_audit`` run, checkpoints, witness): DPO only."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    from audit import verification_report as signed

    role = role_of(request.user)
    role_name = role.value if role is not None else ""
    allowed = role == Role.DPO
    event_record(
        action=AccessEvent.Action.EXPORT,
        outcome=AccessEvent.Outcome.ALLOWED if allowed else AccessEvent.Outcome.DENIED,
        actor=request.user, actor_role=role_name, category="administrative", resource_type="verification_report",
        basis="dpo:verification_report" if allowed else "deny:not_dpo",
        reason="" if allowed else "only the data protection officer downloads the verification report",
        details={"format": fmt},
    )
    if not allowed:
        raise PermissionDenied("only the data protection officer downloads the verification report")
    data = signed.report_data()
    body = signed.signed_pdf(data) if fmt == "pdf" else signed.signed_json(data)
    response = HttpResponse(body, content_type="application/pdf" if fmt == "pdf" else "application/json")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="audit-verification-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
