"""Words for the codes of the access trace, as the DPO, a patient and a clinician read them.

The trace stores stable codes (``deny:no_care_relationship``, ``break_glass``, ``clinicalnote``, ``api``): they
are what the hash chain, the FHIR export and the detection rules rely on, and they never change. Every page,
report and export meant for people shows them through these functions, in the active language. A code with no
label yet is shown as it is (never hidden), so a new code is visible and can be given a label here.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

ACTIONS: dict[str, Promise] = {
    "view": _("view"), "search": _("search"), "create": _("create"), "amend": _("amend"), "delete": _("delete"),
    "export": _("export"), "print": _("print"), "login": _("sign-in"), "login_failure": _("failed sign-in"),
    "logout": _("sign-out"), "break_glass": _("break-the-glass"), "permission_change": _("permission change"),
    "account": pgettext_lazy("trace action", "account"), "alert": _("alert"), "other": _("other"),
}

CATEGORIES: dict[str, Promise] = {
    "administrative": _("administrative"), "medical": _("medical"), "restricted": _("restricted"),
}

OUTCOMES: dict[str, Promise] = {"allowed": _("allowed"), "denied": _("denied")}

# The professions of access.policy.Role (stored as plain text in the trace: it outlives role changes).
ROLES: dict[str, Promise] = {
    "physician": _("physician"), "nurse": _("nurse"), "midwife": _("midwife"), "pharmacist": _("pharmacist"),
    "medical_secretary": _("medical secretary"), "reception": _("reception"),
    "dim": _("medical information physician (DIM)"), "dpo": _("data protection officer"),
    "security_officer": _("security officer"), "it_admin": _("IT administrator"),
    "maintenance": _("maintenance provider"), "integration": _("integration service"),
    "system": _("automated task"),
}

CHANNELS: dict[str, Promise] = {
    "web": _("web page"), "admin": _("reception site"), "api": _("API"), "fhir": _("FHIR"),
    "worker": _("background task"), "cli": _("server command"), "hl7": _("HL7 feed"),
}

RESOURCES: dict[str, Promise] = {
    "patient": _("identity"), "chart": _("record"), "clinicalnote": _("note"), "observation": _("result"),
    "prescription": _("prescription"), "document": _("document"), "allergy": _("allergy"),
    "problem": _("problem"), "encounter": pgettext_lazy("trace resource", "encounter"),
    "appointment": _("appointment"), "emergencyaccess": _("emergency access"),
    "careteammembership": _("care-team membership"), "patientobjection": _("patient objection"),
    "access_report": _("access report"), "accessevent": _("access trace"), "accesslog": _("access log"),
    "archive": _("archive"),
    "backup": _("backup"), "breach": _("data breach"), "rights_request": _("patient rights request"),
    "disposal_decision": _("disposal decision"), "maintenance_window": _("maintenance window"),
    "detection_alert": _("detection alert"), "alert": _("detection alert"), "detection_run": _("detection run"),
    "apiclient": _("API client"), "user": _("user account"), "session": _("session"), "page": _("page"),
    "print": _("printout"), "insi": _("INSi query"), "identitymerge": _("identity merge"),
    "verification_report": _("audit verification report"), "review_item": _("authorization review item"),
}

# Grounds of a decision: the whole code first, then its prefix (``care:...``, ``deny:...``, ``system:...``).
BASES: dict[str, Promise] = {
    "care": _("care team"),
    "care:encounter": _("care team: member of the unit of a stay"),
    "care:appointment": _("care team: appointment with the patient"),
    "care:membership": _("care team: named member"),
    "break_glass": _("emergency access (break-the-glass)"),
    "role": _("allowed for this role"),
    "system": _("automated task"),
    "system:retention": _("automated task: archiving and retention"),
    "system:detection": _("automated task: detection of unusual access"),
    "system:backup": _("automated task: backup"),
    "system:rights": _("automated task: patient rights request"),
    "dpo": _("data protection officer"),
    "dpo:access_report": _("data protection officer: access report"),
    "dpo:verification_report": _("data protection officer: audit verification report"),
    "identity": _("identity vigilance"),
    "identity:create": _("identity vigilance: identity created"),
    "identity:update": _("identity vigilance: identity changed"),
    "identity:insi": _("identity vigilance: INSi query"),
    "identity:insi_applied": _("identity vigilance: INSi result applied"),
    "identity:merge_kept": _("identity vigilance: merge (identity kept)"),
    "identity:merge_merged": _("identity vigilance: merge (identity merged into another)"),
    "identity:unmerge": _("identity vigilance: merge undone"),
    "identity:split": _("identity vigilance: file split"),
    "rights": _("patient rights request"),
    "deny": _("refused"),
    "deny:anonymous": _("refused: not signed in"),
    "deny:inactive": _("refused: account disabled"),
    "deny:no_role": _("refused: account without a care role"),
    "deny:contract": _("refused: outside the contract dates"),
    "deny:second_factor": _("refused: second factor not verified"),
    "deny:matrix": _("refused: not allowed for this role"),
    "deny:role": _("refused: not allowed for this role"),
    "deny:page_role": _("refused: page not open to this role"),
    "deny:not_found": _("refused: unknown patient"),
    "deny:objection": _("refused: the patient objected to this professional"),
    "deny:no_care_relationship": _("refused: not in the patient's care team"),
    "deny:system_task": _("refused: task not allowed"),
    "deny:not_dpo": _("refused: reserved to the data protection officer"),
    "deny:scope": _("refused: outside the API client's scopes"),
    "deny:bad_token": _("refused: unknown or wrong API token"),
    "deny:token_inactive": _("refused: API token revoked or expired"),
    "deny:invalid_request": _("refused: invalid request"),
    "deny:on_behalf_of": _("refused: acting on behalf of this user is not allowed"),
    "deny:maintenance_window": _("refused: outside a maintenance window"),
    "deny:four_eyes": _("refused: a second person must approve"),
    "deny:self_review": _("refused: nobody reviews their own rights"),
    "deny:hl7_sender": _("refused: HL7 sender outside the allowed networks"),
    "password": _("password"),
    "password_change": _("password change"),
    "temporary_password": _("temporary password"),
    "second_factor": _("second factor"),
    "fresh_otp": _("one-time code asked again"),
    "otp_enrolled": _("second factor enrolled"),
    "otp_reset": _("second factor reset"),
    "backup_codes": _("backup codes"),
    "oidc": _("hospital single sign-on"),
    "oidc_link": _("hospital single sign-on linked"),
    "lock": _("session locked"),
    "unlock": _("session unlocked"),
    "locked": _("account locked"),
    "reactivated": _("account enabled again"),
    "disabled": _("account disabled"),
    "disabled:contract_end": _("account disabled: contract ended"),
    "disabled:inactivity": _("account disabled: unused for too long"),
    "disabled:manual": _("account disabled by an administrator"),
    "role_set": _("role assigned"),
    "role_change": _("role changed"),
    "maintenance:approve": _("maintenance window approved"),
    "maintenance:revoke": _("maintenance window revoked"),
    "breach:recorded": _("data breach recorded"),
    "breach:notified_cnil": _("data breach notified to the CNIL"),
    "breach:notified_people": _("data breach notified to the people concerned"),
}

# The gate's reasons for a refusal, in English in the trace; the basis already says most of it.
REASONS: dict[str, Promise] = {
    "not signed in": _("not signed in"),
    "account disabled": _("account disabled"),
    "account has no care role": _("account without a care role"),
    "account not yet valid": _("account not valid yet"),
    "account past its end date": _("account past its end date"),
    "a verified second factor is required": _("a verified second factor is required"),
    "no such patient": _("unknown patient"),
    "the patient objected to this professional": _("the patient objected to this professional"),
    "not in the patient's care team": _("not in the patient's care team"),
    "only the DPO reads the trace": _("only the data protection officer reads the trace"),
    "unknown or wrong API token": _("unknown or wrong API token"),
    "a reviewer cannot decide on their own rights": _("nobody reviews their own rights"),
    "only the data protection officer downloads access reports":
        _("only the data protection officer downloads access reports"),
    "only the data protection officer downloads the verification report":
        _("only the data protection officer downloads the verification report"),
}
_MATRIX_REASON = re.compile(r"^role (?P<role>\w+) may not (?P<action>\w+) (?P<category>\w+) data$")
_TASK_REASON = re.compile(r"^task (?P<task>\w+) may not (?P<action>\w+) (?P<category>\w+) data$")


def _label(table: dict[str, Promise], code: str) -> str:
    return str(table[code]) if code in table else code


def action_label(code: str) -> str:
    return _label(ACTIONS, code)


def category_label(code: str) -> str:
    return _label(CATEGORIES, code)


def outcome_label(code: str) -> str:
    return _label(OUTCOMES, code)


def role_label(code: str) -> str:
    return _label(ROLES, code)


def channel_label(code: str) -> str:
    return _label(CHANNELS, code)


def resource_label(code: str) -> str:
    return _label(RESOURCES, code)


def basis_label(code: str) -> str:
    """``care:encounter`` -> "équipe de soins : membre de l'unité d'un séjour"; unknown details stay visible."""
    if code in BASES:
        return str(BASES[code])
    prefix, _sep, detail = code.partition(":")
    if prefix == "role" and detail:
        return f"{BASES['role']} ({role_label(detail)})"
    if prefix in BASES:
        return f"{BASES[prefix]} ({detail})" if detail else str(BASES[prefix])
    return code


def reason_label(reason: str) -> str:
    """A refusal's reason in words; free text (a break-the-glass justification, a comment) is left as written."""
    if reason in REASONS:
        return str(REASONS[reason])
    match = _MATRIX_REASON.match(reason)
    if match:
        return str(_("a %(role)s may not %(action)s %(category)s data") % {
            "role": role_label(match["role"]), "action": action_label(match["action"]),
            "category": category_label(match["category"])})
    match = _TASK_REASON.match(reason)
    if match:
        return str(_("the task %(task)s may not %(action)s %(category)s data") % {
            "task": match["task"], "action": action_label(match["action"]),
            "category": category_label(match["category"])})
    return reason


def describe(event: Any) -> Any:
    """Attach the labels of one trace row (``action_label``, ``basis_label``...) for a template."""
    event.action_label = action_label(event.action)
    event.category_label = category_label(event.category)
    event.outcome_label = outcome_label(event.outcome)
    event.basis_label = basis_label(event.basis)
    reason = reason_label(event.reason)
    event.reason_label = "" if reason and reason in event.basis_label else reason  # said once is enough
    event.role_label = role_label(event.actor_role)
    event.channel_label = channel_label(event.channel)
    event.resource_label = resource_label(event.resource_type)
    return event
