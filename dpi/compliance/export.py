"""The patient's copy of their record (right of access, art. 15 GDPR; L1111-7 CSP): a PDF for people, a FHIR R4
Bundle for systems, both in an AES-256 encrypted ZIP whose password goes to the patient by another channel.

Callers pass through the gate first (``authorize_system("rights", ...)``, see services.rights_access_export):
this module reads the record without further checks.

Why a ZIP: patients open AES-256 ZIP files with common tools (7-Zip, WinZip, Keka) without dpi. Its key
derivation (WinZip AE-2: PBKDF2-HMAC-SHA1, 1,000 rounds) is weak against guessable passwords, so the password is
random with 125 bits of entropy: no derivation function matters against that. File names inside a ZIP are
not encrypted: they name nothing personal.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings
from django.utils import timezone

from dpi.models import Allergy, Amendment, ClinicalNote, Document, Observation, Prescription, Problem
from patients.models import Encounter, Patient

# 32 symbols, no 0/O or 1/I: read aloud without mistakes.
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # noqa: S105 - an alphabet, not a password
_NS = uuid.UUID("0b6f3c53-5f1c-4a0e-9d7e-2f6b0a6c1d11")


def password_generate(groups: int = 5, size: int = 5) -> str:
    """``XXXXX-XXXXX-XXXXX-XXXXX-XXXXX``: 25 symbols of 5 bits = 125 bits."""
    return "-".join("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(size)) for _ in range(groups))


@dataclass
class Record:
    patient: Patient
    encounters: list[Encounter] = field(default_factory=list)
    notes: list[ClinicalNote] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    prescriptions: list[Prescription] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    allergies: list[Allergy] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    amendments: list[Amendment] = field(default_factory=list)
    accesses: list[dict[str, Any]] = field(default_factory=list)
    generated_at: datetime = field(default_factory=timezone.now)


def record_collect(patient: Patient) -> Record:
    """Everything held about the patient, including who accessed the record (dates, roles, units; the CJEU
    C-579/21 gives the right to the dates and purposes of consultations, not the employees' names)."""
    from audit.selectors import patient_events

    patient = Patient.objects.get(pk=patient.pk)
    pid = patient.pk
    accesses = list(  # with the traces of the files merged with this one (identity vigilance)
        patient_events(pid).order_by("occurred_at", "id")
        .values("occurred_at", "action", "outcome", "actor_role", "actor_unit", "basis", "resource_type")
    )
    return Record(
        patient=patient,
        encounters=list(Encounter.objects.filter(patient_id=pid).select_related("unit").order_by("start")),
        notes=list(ClinicalNote.objects.filter(patient_id=pid).select_related("author").order_by("created_at")),
        observations=list(Observation.objects.filter(patient_id=pid).order_by("effective_at")),
        prescriptions=list(Prescription.objects.filter(patient_id=pid).order_by("start")),
        documents=list(Document.objects.filter(patient_id=pid).order_by("created_at")),
        allergies=list(Allergy.objects.filter(patient_id=pid).order_by("created_at")),
        problems=list(Problem.objects.filter(patient_id=pid).order_by("created_at")),
        amendments=list(Amendment.objects.filter(patient_id=pid).order_by("amended_at")),
        accesses=accesses,
    )


# --- FHIR R4 Bundle ---------------------------------------------------------------------------------------
def _urn(kind: str, pk: Any) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, f'{kind}/{pk}')}"


def _ref(kind: str, pk: Any) -> dict[str, str]:
    return {"reference": _urn(kind, pk)}


def _patient_resource(p: Patient) -> dict[str, Any]:
    ipp_system = getattr(settings, "DPI_FHIR_IPP_SYSTEM", "urn:dpi:ipp")
    identifiers: list[dict[str, Any]] = [{"use": "usual", "system": ipp_system, "value": p.ipp}]
    # Only a qualified identity carries the INS (RNIV; Ségur INS rules).
    if p.ins and p.identity_status == Patient.IdentityStatus.QUALIFIED:
        system = getattr(settings, "DPI_FHIR_INS_SYSTEM", "urn:oid:1.2.250.1.213.1.4.11")
        identifiers.append({"use": "official", "system": system, "value": p.ins})
    given = p.first_names.split() or [p.first_name]
    names = [{"use": "official", "family": p.birth_name, "given": given}]
    if p.used_name:
        names.append({"use": "usual", "family": p.used_name, "given": [p.first_name]})
    res: dict[str, Any] = {
        "resourceType": "Patient", "identifier": identifiers, "name": names,
        "gender": {"M": "male", "F": "female"}.get(p.sex, "unknown"), "birthDate": p.birth_date.isoformat(),
    }
    if p.address or p.city:
        address = {"line": [p.address] if p.address else None, "postalCode": p.postal_code or None,
                   "city": p.city or None}
        res["address"] = [{k: v for k, v in address.items() if v}]
    telecom = [{"system": "phone", "value": p.phone}] if p.phone else []
    telecom += [{"system": "email", "value": p.email}] if p.email else []
    if telecom:
        res["telecom"] = telecom
    if p.date_of_death:
        res["deceasedDateTime"] = p.date_of_death.isoformat()
    return res


_ENCOUNTER_CLASS = {"stay": ("IMP", "inpatient encounter"), "consultation": ("AMB", "ambulatory"),
                    "emergency": ("EMER", "emergency")}


def _encounter_resource(e: Encounter, patient_ref: dict[str, str]) -> dict[str, Any]:
    code, display = _ENCOUNTER_CLASS.get(e.kind, ("AMB", "ambulatory"))
    period = {"start": e.start.isoformat()}
    if e.end:
        period["end"] = e.end.isoformat()
    return {"resourceType": "Encounter", "status": "in-progress" if e.end is None else "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code, "display": display},
            "subject": patient_ref, "period": period, "serviceType": {"text": e.unit.name}}


def _with_encounter(res: dict[str, Any], item: Any) -> dict[str, Any]:
    if item.encounter_id:
        res["encounter"] = _ref("Encounter", item.encounter_id)
    return res


def _note_resource(n: ClinicalNote, patient_ref: dict[str, str]) -> dict[str, Any]:
    res = {"resourceType": "DocumentReference", "status": "current", "type": {"text": n.get_kind_display()},
           "subject": patient_ref, "date": n.created_at.isoformat(), "description": n.title or n.get_kind_display(),
           "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "title": n.title or None,
                                       "data": base64.b64encode(n.body.encode()).decode()}}]}
    res["content"][0]["attachment"] = {k: v for k, v in res["content"][0]["attachment"].items() if v}
    if n.encounter_id:
        res["context"] = {"encounter": [_ref("Encounter", n.encounter_id)]}
    return res


def _document_resource(d: Document, patient_ref: dict[str, str]) -> dict[str, Any]:
    res = {"resourceType": "DocumentReference", "status": "current", "subject": patient_ref,
           "date": d.created_at.isoformat(), "description": d.title,
           "content": [{"attachment": {"contentType": d.media_type, "title": d.title, "size": d.size,
                                       "data": base64.b64encode(d.content).decode()}}]}
    if d.encounter_id:
        res["context"] = {"encounter": [_ref("Encounter", d.encounter_id)]}
    return res


def _observation_resource(o: Observation, patient_ref: dict[str, str]) -> dict[str, Any]:
    coding = [{"system": "http://loinc.org", "code": o.loinc, "display": o.label}] if o.loinc else []
    res: dict[str, Any] = {
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": o.obs_category}]}],
        "code": {"coding": coding, "text": o.label} if coding else {"text": o.label},
        "subject": patient_ref, "effectiveDateTime": o.effective_at.isoformat(),
    }
    if o.value is not None:
        res["valueQuantity"] = {"value": float(o.value), "unit": o.unit} if o.unit else {"value": float(o.value)}
    elif o.value_text:
        res["valueString"] = o.value_text
    ref: dict[str, Any] = {}
    if o.reference_low is not None:
        ref["low"] = {"value": float(o.reference_low), **({"unit": o.unit} if o.unit else {})}
    if o.reference_high is not None:
        ref["high"] = {"value": float(o.reference_high), **({"unit": o.unit} if o.unit else {})}
    if ref:
        res["referenceRange"] = [ref]
    if o.abnormal:
        res["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                              "code": o.abnormal}]}]
    return _with_encounter(res, o)


def _prescription_resource(r: Prescription, patient_ref: dict[str, str]) -> dict[str, Any]:
    res = {"resourceType": "MedicationRequest", "status": r.status, "intent": "order",
           "medicationCodeableConcept": {"text": r.medication}, "subject": patient_ref,
           "authoredOn": r.created_at.isoformat(), "dosageInstruction": [{"text": r.instructions}]}
    return _with_encounter(res, r)


def _allergy_resource(a: Allergy, patient_ref: dict[str, str]) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "AllergyIntolerance", "patient": patient_ref, "code": {"text": a.substance},
                           "criticality": a.severity, "recordedDate": a.created_at.isoformat()}
    if a.reaction:
        res["reaction"] = [{"manifestation": [{"text": a.reaction}]}]
    return res


def _problem_resource(p: Problem, patient_ref: dict[str, str]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": p.status}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": p.icd10, "display": p.label}],
                 "text": p.label},
        "subject": patient_ref, "recordedDate": p.created_at.isoformat(),
    }
    if p.onset:
        res["onsetDateTime"] = p.onset.isoformat()
    if p.comment:
        res["note"] = [{"text": p.comment}]
    return _with_encounter(res, p)


def fhir_bundle(record: Record) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle of the whole record (resources refer to each other by urn:uuid)."""
    p = record.patient
    patient_ref = _ref("Patient", p.pk)
    entries = [("Patient", p.pk, _patient_resource(p))]
    entries += [("Encounter", e.pk, _encounter_resource(e, patient_ref)) for e in record.encounters]
    entries += [("Condition", x.pk, _problem_resource(x, patient_ref)) for x in record.problems]
    entries += [("AllergyIntolerance", x.pk, _allergy_resource(x, patient_ref)) for x in record.allergies]
    entries += [("Observation", x.pk, _observation_resource(x, patient_ref)) for x in record.observations]
    entries += [("MedicationRequest", x.pk, _prescription_resource(x, patient_ref)) for x in record.prescriptions]
    entries += [("DocumentReference", f"note-{x.pk}", _note_resource(x, patient_ref)) for x in record.notes]
    entries += [("DocumentReference", f"doc-{x.pk}", _document_resource(x, patient_ref)) for x in record.documents]
    return {
        "resourceType": "Bundle", "type": "collection", "timestamp": record.generated_at.isoformat(),
        "entry": [{"fullUrl": _urn(kind, pk), "resource": res} for kind, pk, res in entries],
    }


# --- PDF --------------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%d/%m/%Y %H:%M")
    if hasattr(value, "strftime"):
        return value.strftime("%d/%m/%Y")
    return str(value)


def record_pdf(record: Record) -> bytes:
    """A readable copy of the record (reportlab), section by section."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=8, leading=10)
    p = record.patient
    story: list[Any] = []

    def para(text: Any, style=body) -> Paragraph:
        return Paragraph(escape(_fmt(text)).replace("\n", "<br/>"), style)

    def heading(text: str) -> None:
        story.extend([Spacer(1, 0.4 * cm), Paragraph(escape(text), styles["Heading2"])])

    def table(header: list[str], rows: list[list[Any]], widths: list[float] | None = None) -> None:
        if not rows:
            story.append(para("Aucun élément."))
            return
        data = [[Paragraph(f"<b>{escape(h)}</b>", small) for h in header]]
        data += [[para(c, small) for c in row] for row in rows]
        t = Table(data, colWidths=widths, repeatRows=1)
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee"))]))
        story.append(t)

    story.append(Paragraph("Copie du dossier patient / Copy of the patient record", styles["Title"]))
    story.append(para(f"Édité le {_fmt(record.generated_at)} — droit d'accès (art. 15 RGPD, L1111-7 CSP)."))
    heading("Identité / Identity")
    ident = [["IPP", p.ipp], ["Nom de naissance", p.birth_name], ["Nom d'usage", p.used_name],
             ["Prénoms", p.first_names or p.first_name], ["Sexe", p.get_sex_display()],
             ["Date de naissance", p.birth_date], ["Lieu de naissance (INSEE)", p.birthplace_insee],
             ["INS", p.ins if p.identity_status == Patient.IdentityStatus.QUALIFIED else ""],
             ["Statut de l'identité", p.get_identity_status_display()],
             ["Adresse", " ".join(x for x in (p.address, p.postal_code, p.city) if x)], ["Téléphone", p.phone],
             ["Courriel", p.email], ["N° de sécurité sociale", p.social_security_number]]
    table(["Champ", "Valeur"], ident, [5 * cm, 11 * cm])
    heading("Séjours et consultations / Encounters")
    table(["Type", "Unité", "Début", "Fin"], [[e.get_kind_display(), e.unit.name, e.start, e.end]
                                             for e in record.encounters])
    heading("Problèmes / Problems")
    table(["CIM-10", "Libellé", "Statut", "Début", "Commentaire"],
          [[x.icd10, x.label, x.get_status_display(), x.onset, x.comment] for x in record.problems])
    heading("Allergies")
    table(["Substance", "Réaction", "Gravité"], [[x.substance, x.reaction, x.get_severity_display()]
                                                for x in record.allergies])
    heading("Résultats et constantes / Observations")
    table(["Date", "Examen", "Valeur", "Unité", "Normes"],
          [[x.effective_at, x.label, x.value if x.value is not None else x.value_text, x.unit,
            f"{_fmt(x.reference_low)} – {_fmt(x.reference_high)}"] for x in record.observations])
    heading("Prescriptions")
    table(["Début", "Médicament", "Posologie", "Statut"],
          [[x.start, x.medication, x.instructions, x.get_status_display()] for x in record.prescriptions])
    heading("Notes cliniques / Clinical notes")
    if not record.notes:
        story.append(para("Aucun élément."))
    for n in record.notes:
        story.append(Paragraph(f"<b>{escape(_fmt(n.created_at))} — {escape(n.get_kind_display())}"
                               f"{' — ' + escape(n.title) if n.title else ''}</b> (version {n.version})", body))
        story.append(para(n.body))
    heading("Documents")
    table(["Date", "Titre", "Type", "Taille (octets)"],
          [[d.created_at, d.title, d.media_type, d.size] for d in record.documents])
    story.append(para("Le contenu des documents est joint dans le fichier FHIR (DocumentReference).", small))
    heading("Historique des corrections / Amendments")
    table(["Date", "Élément", "Version remplacée", "Motif"],
          [[a.amended_at, f"{a.resource_type} {a.resource_id}", a.version, a.reason] for a in record.amendments])
    heading("Accès au dossier / Who accessed the record")
    table(["Date", "Action", "Résultat", "Fonction", "Unité", "Fondement"],
          [[a["occurred_at"], a["action"], a["outcome"], a["actor_role"], a["actor_unit"], a["basis"]]
           for a in record.accesses])
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=A4, title="Copie du dossier patient", author="dpi",
                      leftMargin=2 * cm, rightMargin=2 * cm).build(story)
    return buf.getvalue()


# --- the container ----------------------------------------------------------------------------------------
README = """Copie de votre dossier patient / Copy of your patient record

dossier.pdf        le dossier lisible / the readable record
dossier-fhir.json  le meme dossier au format FHIR R4 (Bundle), pour un autre logiciel de sante /
                   the same record as a FHIR R4 Bundle, for another health system

Ce fichier ZIP est chiffre (AES-256). Le mot de passe vous a ete remis par un autre canal.
Ouvrez-le avec 7-Zip, WinZip ou Keka. / This ZIP is AES-256 encrypted; the password was given to you
separately. Open it with 7-Zip, WinZip or Keka.
Reference: {reference}
"""


def encrypted_zip(record: Record, *, password: str, reference: str) -> bytes:
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(password.encode())
        zf.setencryption(pyzipper.WZ_AES, nbits=256)
        zf.writestr("dossier.pdf", record_pdf(record))
        zf.writestr("dossier-fhir.json", json.dumps(fhir_bundle(record), ensure_ascii=False, indent=1))
        zf.writestr("LISEZMOI.txt", README.format(reference=reference))
    return buf.getvalue()
