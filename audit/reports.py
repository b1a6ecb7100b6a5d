"""The patient access report in three formats: CSV (spreadsheet), PDF (to hand to the patient), and FHIR
AuditEvent resources (IHE BALP style) in a Bundle, for another system.

Only trace fields are shown (who, when, role, unit, basis, action, outcome): no patient data, not even the
patient's name (the DPO who produces the report has no right to read the record itself).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit import labels
from audit.models import AccessEvent

COLUMNS = ("event", "when", "who", "user_id", "role", "unit", "action", "data", "item", "outcome", "basis",
           "channel", "reason", "integrity")

# Why verify_audit found a row not genuine (audit.selectors.integrity_flags): the report marks it, never shows it
# as a genuine access.
INTEGRITY = {
    "duplicate_id": gettext_lazy("inserted reusing the number of a genuine trace"),
    "quarantined": gettext_lazy("inserted reusing the number of a genuine trace"),
    "event_inserted": gettext_lazy("inserted outside the hash chain"),
    "link_inserted": gettext_lazy("inserted into the hash chain after the fact"),
    "event_altered": gettext_lazy("altered after it was recorded"),
}
Flags = dict[tuple[int, datetime], str]


def integrity_label(event: AccessEvent, flags: Flags | None) -> str:
    """"" for a genuine row; "NOT GENUINE: why" for a row the integrity check named."""
    kind = (flags or {}).get((event.id, event.occurred_at))
    if kind is None:
        return ""
    return _("NOT GENUINE: %(why)s") % {"why": INTEGRITY.get(kind, kind)}


def basis_label(basis: str) -> str:
    """A reader-friendly explanation of the recorded basis (``care:encounter``, ``break_glass``...)."""
    return labels.basis_label(basis)


def row(event: AccessEvent, flags: Flags | None = None) -> dict[str, str]:
    when = timezone.localtime(event.occurred_at)
    return {
        "event": str(event.id),
        "when": when.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "who": event.actor_username or (_("system") if event.actor_role == "system" else "-"),
        "user_id": "" if event.actor_id is None else str(event.actor_id),
        "role": event.actor_role,
        "unit": event.actor_unit,
        "action": event.action,
        "data": event.category,
        "item": f"{event.resource_type} {event.resource_id}".strip(),
        "outcome": event.outcome,
        "basis": basis_label(event.basis),
        "channel": event.channel,
        "reason": event.reason,
        "integrity": integrity_label(event, flags),
    }


def _cell(value: str) -> str:
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(events: Iterable[AccessEvent], *, flags: Flags | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for event in events:
        r = row(event, flags)
        writer.writerow([_cell(r[c]) for c in COLUMNS])
    return out.getvalue()


def staff_names(events: Iterable[AccessEvent]) -> dict[int, str]:
    """Full names of the professionals in the trace, by user id (one query); a patient reads names, not logins."""
    from django.contrib.auth import get_user_model

    ids = {e.actor_id for e in events if e.actor_id is not None}
    users = get_user_model().objects.filter(pk__in=ids).only("first_name", "last_name", "username")
    return {u.pk: u.get_full_name() or u.get_username() for u in users}


def unit_names(events: Iterable[AccessEvent]) -> dict[str, str]:
    """Care-unit names by code (the trace keeps the codes of the units the professional belonged to)."""
    from django.apps import apps

    codes = {c for e in events if e.actor_role != "system" for c in e.actor_unit.split(",") if c}
    if not codes:
        return {}
    care_unit = apps.get_model("patients", "CareUnit")
    return dict(care_unit.objects.filter(code__in=codes).values_list("code", "name"))


def _unit(event: AccessEvent, names: dict[str, str]) -> str:
    if event.actor_role == "system":
        return ""
    return ", ".join(names.get(c, c) for c in event.actor_unit.split(",") if c)


def _who(event: AccessEvent, names: dict[int, str]) -> str:
    if event.actor_id is not None:
        return names.get(event.actor_id) or event.actor_username or "-"
    if event.actor_role == "system":
        return _("automated task")
    return event.actor_username or "-"


def to_pdf(events: list[AccessEvent], *, patient_id: int, chain_note: str = "", printed_by: str = "",
           flags: Flags | None = None) -> bytes:
    """The report handed to the patient: one language (the active one), names and functions, not codes."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

    from dpi.printing import PageMarks, build_pdf, escape, printed_at_text

    title = _("Record of accesses to patient file no. %(id)s") % {"id": patient_id}
    marks = PageMarks(title=_("Access report"), identity=_("Patient file no. %(id)s") % {"id": patient_id},
                      printed=printed_at_text(by=printed_by))
    names, units = staff_names(events), unit_names(events)

    def story(styles):
        small = styles["small"]
        yield Paragraph(escape(title), styles["title"])
        yield Paragraph(escape(_("%(n)s recorded accesses, oldest first, including refused attempts and "
                                 "automated tasks.") % {"n": len(events)}), styles["body"])
        if chain_note:
            yield Paragraph(escape(chain_note), small)
        flagged = sum(1 for e in events if integrity_label(e, flags))
        if flagged:
            yield Paragraph("<b>" + escape(_(
                "%(n)s of these traces are not genuine according to the integrity check (marked NOT GENUINE): they "
                "were forged or altered after the fact and must not be read as genuine accesses; they are kept for "
                "the investigation.") % {"n": flagged}) + "</b>", styles["body"])
        yield Spacer(1, 4 * mm)
        header = [_("When"), _("Who"), _("Function"), _("Unit"), _("Action"), _("Data"), _("Outcome"),
                  _("Basis"), _("Channel")]
        data = [[Paragraph(escape(h), small) for h in header]]
        marked: list[int] = []
        for event in events:
            when = formats.date_format(timezone.localtime(event.occurred_at), "d/m/Y H:i:s")
            action = labels.action_label(event.action)
            if event.resource_type:
                action = f"{action} ({labels.resource_label(event.resource_type)})"
            basis = labels.basis_label(event.basis)
            reason = labels.reason_label(event.reason)
            if reason and reason not in basis:
                basis = f"{basis} — {reason}"
            not_genuine = integrity_label(event, flags)
            if not_genuine:
                basis = f"{not_genuine} — {basis}"
                marked.append(len(data))
            cells = (when, _who(event, names), labels.role_label(event.actor_role), _unit(event, units), action,
                     labels.category_label(event.category), labels.outcome_label(event.outcome), basis,
                     labels.channel_label(event.channel))
            data.append([Paragraph(escape(v), small) for v in cells])
        if len(data) == 1:
            data.append([Paragraph(escape(_("No access recorded.")), small)] + [""] * (len(header) - 1))
        widths = [27 * mm, 36 * mm, 30 * mm, 28 * mm, 34 * mm, 20 * mm, 17 * mm, 57 * mm, 24 * mm]
        table = Table(data, colWidths=widths, repeatRows=1)
        table.setStyle(TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ee")),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            *(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#f6d5d5")) for i in marked),
        ]))
        yield table

    return build_pdf(story, marks=marks, landscape_page=True)


# --- FHIR AuditEvent (R4), after the IHE Basic Audit Log Patterns (BALP) ----------------------------------
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
_INTERACTION = {  # our action -> (BALP profile, FHIR restful interaction, AuditEvent.action)
    "view": ("IHE.BasicAudit.PatientRead", "read", "R"),
    "print": ("IHE.BasicAudit.PatientRead", "read", "R"),
    "export": ("IHE.BasicAudit.PatientRead", "read", "R"),
    "search": ("IHE.BasicAudit.PatientQuery", "search-type", "E"),
    "create": ("IHE.BasicAudit.PatientCreate", "create", "C"),
    "amend": ("IHE.BasicAudit.PatientUpdate", "update", "U"),
    "delete": ("IHE.BasicAudit.PatientDelete", "delete", "D"),
}
_PURPOSE = {  # recorded basis -> HL7 v3 PurposeOfUse
    "care": "TREAT",
    "break_glass": "ETREAT",
    "role": "HOPERAT",
    "dpo": "PATRQT",
    "system": "RECORDMGT",
}


INTEGRITY_SYSTEM = "urn:dpi:audit-integrity"  # meta.tag of an AuditEvent the integrity check found not genuine
NOT_GENUINE = "not-genuine"  # its code (also the REST API's ``integrity.code``)
_NAMESPACE = uuid.UUID("6b0c2f0e-3c1a-5d7e-9a8b-2f4d1c0e9a31")  # dpi access events


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# AuditEvent.outcome (R4 value set audit-event-outcome): a refusal by the gate is a minor failure ("4"); dpi
# records no serious (8) or major (12) failures as access events.
OUTCOME_CODE = {AccessEvent.Outcome.ALLOWED: "0", AccessEvent.Outcome.DENIED: "4"}
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_SECURITY_TYPE = {  # non-REST events: DICOM audit event type and subtype
    "login": ((DCM, "110114", "User Authentication"), (DCM, "110122", "Login")),
    "login_failure": ((DCM, "110114", "User Authentication"), (DCM, "110122", "Login")),
    "logout": ((DCM, "110114", "User Authentication"), (DCM, "110123", "Logout")),
    "permission_change": ((DCM, "110136", "Security Roles Changed"), None),
    "break_glass": ((DCM, "110113", "Security Alert"), None),
    "alert": ((DCM, "110113", "Security Alert"), None),
}
REST_TYPE = ("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation")


def fhir_action(action: str) -> str:
    """AuditEvent.action (C R U D E) of a recorded action."""
    return _INTERACTION.get(action, (None, None, "E"))[2]


def fhir_subtype(action: str) -> tuple[str, str]:
    """(system, code) of AuditEvent.subtype for a recorded action."""
    if action in _INTERACTION:
        return "http://hl7.org/fhir/restful-interaction", _INTERACTION[action][1]
    security = _SECURITY_TYPE.get(action)
    if security and security[1]:
        return security[1][0], security[1][1]
    return "urn:dpi:audit-action", action


def to_fhir_audit_event(event: AccessEvent, flags: Flags | None = None) -> dict:
    """The one FHIR shape of an access event (IHE BALP), used by /fhir/AuditEvent and the access report."""
    profile, interaction, action = _INTERACTION.get(event.action, (None, None, "E"))
    security = _SECURITY_TYPE.get(event.action)
    system, code, display = security[0] if security else REST_TYPE
    resource: dict = {
        "resourceType": "AuditEvent",
        "id": str(event.id),
        "type": {"system": system, "code": code, "display": display},
        "action": action,
        "recorded": _instant(event.occurred_at),
        "outcome": OUTCOME_CODE.get(event.outcome, "4"),
        "agent": [],
        "source": {
            "observer": {"display": "dpi"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                      "display": "Application Server"}],
        },
        "entity": [],
    }
    if event.patient_id:
        resource["entity"].append({
            "what": {"reference": f"Patient/{event.patient_id}"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1",
                     "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1",
                     "display": "Patient"},
        })
    if profile and event.patient_id:
        resource["meta"] = {"profile": [BALP + profile]}
    not_genuine = integrity_label(event, flags)
    if not_genuine:
        resource.setdefault("meta", {})["tag"] = [{"system": INTEGRITY_SYSTEM, "code": NOT_GENUINE,
                                                   "display": not_genuine}]
    sub_system, sub_code = fhir_subtype(event.action)
    resource["subtype"] = [{"system": sub_system, "code": sub_code}]
    if event.outcome != AccessEvent.Outcome.ALLOWED:
        resource["outcomeDesc"] = event.reason or event.basis or "denied"
    purpose = _PURPOSE.get(event.basis.partition(":")[0]) if event.outcome == AccessEvent.Outcome.ALLOWED else None
    if purpose:
        resource["purposeOfEvent"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                   "code": purpose}]}]
    human = event.actor_id is not None
    agent: dict = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                             "code": "humanuser" if human else "dataprocessor",
                             "display": "human user" if human else "data processor"}]},
        "who": {"display": event.actor_username or f"dpi {event.actor_unit or 'system'}"},
        "requestor": True,
    }
    if human:
        agent["who"]["identifier"] = {"system": "urn:dpi:user", "value": str(event.actor_id)}
    if event.actor_role:
        agent["role"] = [{"text": event.actor_role}]
    if event.ip:
        agent["network"] = {"address": str(event.ip), "type": "2"}
    resource["agent"].append(agent)
    resource["agent"].append({
        "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153",
                             "display": "Source Role ID"}]},
        "who": {"display": "dpi"},
        "requestor": False,
    })
    if event.resource_type:
        resource["entity"].append({
            "what": {"identifier": {"system": "urn:dpi:resource",
                                    "value": f"{event.resource_type}/{event.resource_id}".rstrip("/")}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                     "display": "System Object"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4",
                     "display": "Domain Resource"},
            "description": event.category or None,
        })
        if resource["entity"][-1]["description"] is None:
            del resource["entity"][-1]["description"]
    if event.request_id:
        resource["entity"].append({
            "what": {"identifier": {"value": event.request_id}},
            "type": {"system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                     "code": "XrequestId"},
        })
    if not resource["entity"]:
        del resource["entity"]
    return resource


def fhir_entry_uuid(event: AccessEvent, *, not_genuine: bool) -> str:
    """A Bundle entry's id: the event id for a genuine row; id and date for a row the integrity check named (a
    forged row reusing an id must not share the genuine row's fullUrl)."""
    name = f"{event.id}/{event.occurred_at.isoformat()}" if not_genuine else str(event.id)
    return str(uuid.uuid5(_NAMESPACE, name))


def to_fhir_bundle(events: Iterable[AccessEvent], *, patient_id: int, flags: Flags | None = None) -> dict:
    # A forged row reusing an id gets its own fullUrl (bundle entries must not share one).
    entries = [{"fullUrl": "urn:uuid:" + fhir_entry_uuid(e, not_genuine=bool(integrity_label(e, flags))),
                "resource": to_fhir_audit_event(e, flags)}
               for e in events]
    return {
        "resourceType": "Bundle",
        "id": f"dpi-access-report-{patient_id}",
        "type": "collection",
        "timestamp": _instant(timezone.now()),
        "entry": entries,
    }
