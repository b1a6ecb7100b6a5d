"""dpi rows as FHIR R4 resources (JSON dicts), following the French core profiles (FR Core) where they apply.

- Patient: ``fr-core-patient``, or ``fr-core-patient-ins`` when the INS is sent. The INS (with its OID) is
  sent only for a qualified identity (QUAL); the identity reliability status is always sent
  (``fr-core-identity-reliability`` extension, codes PROV / RECUP / VALI / QUAL).
- Encounter: ``fr-core-encounter`` (identifier with a type and a system, class, period).
- Observation, DocumentReference, AllergyIntolerance, Condition, MedicationRequest: base R4 resources (FR Core
  has no general laboratory or problem-list profile). DocumentReference carries the XDS/DMP type (LOINC) and
  class (TRE_A03) codes, its author and the SHA-1 of its content; Condition the CIM-10 code (ATIH edition).
- AuditEvent: the IHE BALP shape, built by ``audit.reports.to_fhir_audit_event`` (one function for the FHIR
  API and the patient's access report).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from datetime import UTC
from typing import Any

from django.conf import settings

from audit import reports as audit_reports
from audit.models import AccessEvent
from dpi.clinical_reference import is_loinc
from dpi.models import (
    DOCUMENT_TYPE_CODES,
    Allergy,
    Document,
    MedicationAdministration,
    Observation,
    Prescription,
    Problem,
)
from patients.models import Encounter, Patient

FR_CORE = "https://hl7.fr/ig/fhir/core"
PROFILE_PATIENT = f"{FR_CORE}/StructureDefinition/fr-core-patient"
PROFILE_PATIENT_INS = f"{FR_CORE}/StructureDefinition/fr-core-patient-ins"
PROFILE_ENCOUNTER = f"{FR_CORE}/StructureDefinition/fr-core-encounter"
EXT_IDENTITY_RELIABILITY = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
EXT_BIRTH_LIST_GIVEN_NAME = f"{FR_CORE}/StructureDefinition/fr-core-patient-birth-list-given-name"
EXT_INSEE_CODE = f"{FR_CORE}/StructureDefinition/fr-core-address-insee-code"
EXT_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
# Identity status codes: FR Core 2.x draws them from HL7 v2 table 0445; newer versions from their own code
# system. dpi pins FR Core 2.1 for output (CS_IDENTITY_STATUS) and accepts both on input.
CS_IDENTITY_STATUS = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0445"
CS_IDENTITY_STATUS_NEW = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status"
IDENTITY_STATUS_SYSTEMS = frozenset({CS_IDENTITY_STATUS, CS_IDENTITY_STATUS_NEW})
CS_VALIDATION_MODE = f"{FR_CORE}/CodeSystem/fr-core-cs-mode-validation-identity"
CS_FR_IDENTIFIER_TYPE = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
CS_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# CIM-10 in its French edition for hospital coding (ATIH, "CIM-10 FR à usage PMSI"), as published by the ANS
# terminology server.
CS_CIM10_ATIH = "https://smt.esante.gouv.fr/terminologie-cim-10/"
CS_LOINC = "http://loinc.org"
# XDS/DMP document metadata: typeCode from LOINC (JDV_J07-XdsTypeCode-CISIS), classCode from TRE_A03.
CS_DOCUMENT_CLASS = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
CS_INSEE_COMMUNE = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"

OID_INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
OID_INS_NIA = "urn:oid:1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "urn:oid:1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "urn:oid:1.2.250.1.213.1.4.11"
INS_TYPE = {
    OID_INS_NIR: "INS-NIR",
    OID_INS_NIA: "INS-NIA",
    OID_INS_NIR_TEST: "INS-NIR-TEST",
    OID_INS_NIR_DEMO: "INS-NIR-DEMO",
}

IDENTITY_STATUS_DISPLAY = {
    "PROV": "Identité provisoire",
    "RECUP": "Identité récupérée",
    "VALI": "Identité validée",
    "QUAL": "Identité qualifiée",
}
GENDER = {"M": "male", "F": "female", "U": "unknown"}


def _ref(kind: str, pk: Any) -> dict[str, str]:
    return {"reference": f"{kind}/{pk}"}


def _instant(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ins_system(ins_kind: str) -> str:
    """The OID an INS is sent under: the configured NIR namespace; an NIA under its own OID in production."""
    configured = settings.DPI_FHIR_INS_SYSTEM
    if ins_kind == "NIA" and configured == OID_INS_NIR:
        return OID_INS_NIA
    return configured


def ins_identifier(patient: Patient) -> dict[str, Any] | None:
    """Only a qualified identity may carry and send its INS (RNIV; Ségur INS/va1.53)."""
    if patient.identity_status != Patient.IdentityStatus.QUALIFIED or not patient.ins:
        return None
    system = ins_system(patient.ins_kind)
    return {
        "use": "temp" if patient.ins_kind == "NIA" else "official",
        "type": {"coding": [{"system": CS_FR_IDENTIFIER_TYPE, "code": INS_TYPE[system]}]},
        "system": system,
        "value": patient.ins,
    }


@functools.cache
def _validation_modes() -> dict[str, Any]:
    """What ``get_validation_mode_display`` looks up, built once (it rebuilds the dict on every call)."""
    return dict(Patient._meta.get_field("validation_mode").flatchoices)


def identity_reliability(patient: Patient) -> dict[str, Any]:
    """``fr-core-identity-reliability``: the status, and what it rests on (document type and date of its check,
    date of the INSi answer), with the RNIV attribute (doubtful, fictitious, homonym) as comment."""
    status = patient.identity_status
    parts: list[dict[str, Any]] = [{
        "url": "identityStatus",
        "valueCoding": {"system": CS_IDENTITY_STATUS, "code": status,
                        "display": IDENTITY_STATUS_DISPLAY.get(status, status)},
    }]
    if patient.validation_mode and patient.validation_date:
        parts.append({"url": "validationDate", "valueDate": patient.validation_date.isoformat()})
        parts.append({"url": "validationMode", "valueCodeableConcept": {"coding": [
            {"system": CS_VALIDATION_MODE, "code": patient.validation_mode,
             "display": str(_validation_modes().get(patient.validation_mode, patient.validation_mode))}]}})
    if patient.insi_date:
        parts.append({"url": "dateInterrogationINSi", "valueDateTime": _instant(patient.insi_date)})
    if patient.identity_attribute:
        parts.append({"url": "comment", "valueString": patient.identity_attribute})
    return {"url": EXT_IDENTITY_RELIABILITY, "extension": parts}


def birth_place(code: str) -> dict[str, Any]:
    """``patient-birthPlace``: the INSEE code (commune, or 99 + country), with its name from the reference list."""
    from patients import places

    address: dict[str, Any] = {
        "extension": [{"url": EXT_INSEE_CODE, "valueCoding": {"system": CS_INSEE_COMMUNE, "code": code}}]
    }
    label = places.label(code)
    if label:
        address["country" if places.is_country(code) else "city"] = label
    if not places.is_country(code):
        address["country"] = "FRA"
    return {"url": EXT_BIRTH_PLACE, "valueAddress": address}


def identity_status_from_coding(coding: dict[str, Any]) -> str:
    """The RNIV status of an ``identityStatus`` coding, from either code system (FR Core 2.x table 0445 or the
    newer ``fr-core-cs-identity-status``). Raises ValueError for another system or code."""
    system, code = coding.get("system"), coding.get("code")
    if system not in IDENTITY_STATUS_SYSTEMS:
        raise ValueError(f"identityStatus: unknown code system {system!r}")
    if code not in IDENTITY_STATUS_DISPLAY:
        raise ValueError(f"identityStatus: unknown code {code!r}")
    return code


def patient_fields_from_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Identity fields for ``patients.services.patient_create`` from a FR Core Patient (input side).

    The status is taken from either identity-status code system and then checked by the service against its
    evidence (validation mode and date; an INSi answer cannot come from outside: RECUP/QUAL are refused).
    """
    fields: dict[str, Any] = {}
    for identifier in resource.get("identifier", []):
        # The INS as another system sent it: kept, checked against the traits, and never sent on before the
        # identity is qualified here (the service's rules, as on every channel).
        if identifier.get("system") in INS_TYPE and identifier.get("value"):
            fields["ins"] = identifier["value"]
    official = next((n for n in resource.get("name", []) if n.get("use") == "official"), None)
    if official:
        fields["birth_name"] = official.get("family", "")
        given = official.get("given") or [""]
        fields["first_name"] = given[0]
        for ext in official.get("extension", []):
            if ext.get("url") == EXT_BIRTH_LIST_GIVEN_NAME:
                fields["first_names"] = ext.get("valueString", "")
    usual = next((n for n in resource.get("name", []) if n.get("use") == "usual"), None)
    if usual:
        fields["used_name"] = usual.get("family", "")
    gender = {v: k for k, v in GENDER.items()}
    if "gender" in resource:
        fields["sex"] = gender.get(resource["gender"], "U")
    if "birthDate" in resource:
        from datetime import date

        fields["birth_date"] = date.fromisoformat(resource["birthDate"])
    for ext in resource.get("extension", []):
        if ext.get("url") == EXT_BIRTH_PLACE:
            for sub in ext.get("valueAddress", {}).get("extension", []):
                if sub.get("url") == EXT_INSEE_CODE:
                    fields["birthplace_insee"] = sub.get("valueCoding", {}).get("code", "")
        if ext.get("url") == EXT_IDENTITY_RELIABILITY:
            for sub in ext.get("extension", []):
                if sub.get("url") == "identityStatus":
                    fields["identity_status"] = identity_status_from_coding(sub.get("valueCoding", {}))
                elif sub.get("url") == "validationMode":
                    codings = sub.get("valueCodeableConcept", {}).get("coding", []) or [sub.get("valueCoding", {})]
                    fields["validation_mode"] = codings[0].get("code", "")
                elif sub.get("url") == "validationDate":
                    from datetime import date

                    fields["validation_date"] = date.fromisoformat(sub["valueDate"])
                elif sub.get("url") == "comment" and sub.get("valueString") in {"DOUT", "FICT", "HOMA"}:
                    fields["identity_attribute"] = sub["valueString"]
    return fields


def patient_resource(patient: Patient) -> dict[str, Any]:
    ins = ins_identifier(patient)
    identifiers = [
        {
            "use": "usual",
            "type": {"coding": [{"system": CS_V2_0203, "code": "PI", "display": "Patient internal identifier"}]},
            "system": settings.DPI_FHIR_IPP_SYSTEM,
            "value": patient.ipp,
        }
    ]
    if ins:
        identifiers.append(ins)
    extensions: list[dict[str, Any]] = [identity_reliability(patient)]
    if patient.birthplace_insee:
        extensions.append(birth_place(patient.birthplace_insee))
    official: dict[str, Any] = {
        "use": "official",
        "family": patient.birth_name,
        "given": [patient.first_name],
    }
    if patient.first_names:
        official["extension"] = [{"url": EXT_BIRTH_LIST_GIVEN_NAME, "valueString": patient.first_names}]
    names = [official]
    if patient.used_name:
        names.append({"use": "usual", "family": patient.used_name, "given": [patient.first_name]})
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": {
            "lastUpdated": _instant(patient.updated_at),
            "profile": [PROFILE_PATIENT_INS if ins else PROFILE_PATIENT],
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "R" if patient.is_restricted else "N",
                }
            ],
        },
        "extension": extensions,
        "identifier": identifiers,
        "name": names,
        "gender": GENDER.get(patient.sex, "unknown"),
        "birthDate": patient.birth_date.isoformat(),
    }
    if patient.date_of_death:
        resource["deceasedDateTime"] = patient.date_of_death.isoformat()
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if telecom:
        resource["telecom"] = telecom
    if patient.address or patient.postal_code or patient.city:
        address: dict[str, Any] = {"use": "home"}
        if patient.address:
            address["line"] = [patient.address]
        if patient.postal_code:
            address["postalCode"] = patient.postal_code
        if patient.city:
            address["city"] = patient.city
        resource["address"] = [address]
    return resource


ENCOUNTER_CLASS = {
    Encounter.Kind.STAY: ("IMP", "inpatient encounter"),
    Encounter.Kind.CONSULTATION: ("AMB", "ambulatory"),
    Encounter.Kind.EMERGENCY: ("EMER", "emergency"),
}


def encounter_resource(encounter: Encounter) -> dict[str, Any]:
    code, display = ENCOUNTER_CLASS.get(encounter.kind, ("IMP", "inpatient encounter"))
    period = {"start": _instant(encounter.start)}
    if encounter.end:
        period["end"] = _instant(encounter.end)
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": str(encounter.pk),
        "meta": {"profile": [PROFILE_ENCOUNTER]},
        "identifier": [
            {
                "type": {"coding": [{"system": CS_V2_0203, "code": "VN", "display": "Visit number"}]},
                "system": settings.DPI_FHIR_ENCOUNTER_SYSTEM,
                "value": str(encounter.pk),
            }
        ],
        "status": "in-progress" if encounter.end is None else "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": code,
            "display": display,
        },
        "serviceType": {
            "coding": [{"system": "urn:dpi:care-unit", "code": encounter.unit.code, "display": encounter.unit.name}],
            "text": encounter.unit.name,
        },
        "subject": _ref("Patient", encounter.patient_id),
        "period": period,
    }
    if encounter.transferred_from_id:
        # The previous movement of the same stay (transfer between units).
        resource["partOf"] = _ref("Encounter", encounter.transferred_from_id)
    return resource


def _clinical_meta(item) -> dict[str, Any]:
    return {"versionId": str(item.version), "lastUpdated": _instant(item.updated_at)}


def _quantity(value, unit: str) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    if unit:
        out["unit"] = unit
    return out


def observation_resource(obs: Observation) -> dict[str, Any]:
    code: dict[str, Any] = {"text": obs.label}
    if obs.loinc and is_loinc(obs.loinc):  # a local code sent as LN by a feed, or an older row, is not LOINC
        code["coding"] = [{"system": CS_LOINC, "code": obs.loinc, "display": obs.label}]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(obs.pk),
        "meta": _clinical_meta(obs),
        "status": "amended" if obs.version > 1 else "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": obs.obs_category,
                    }
                ]
            }
        ],
        "code": code,
        "subject": _ref("Patient", obs.patient_id),
        "effectiveDateTime": _instant(obs.effective_at),
        "issued": _instant(obs.created_at),
    }
    if obs.encounter_id:
        resource["encounter"] = _ref("Encounter", obs.encounter_id)
    if obs.obs_category == "vital-signs":
        # FHIR vital-signs profile: the category, a LOINC code and a UCUM quantity.
        resource["meta"]["profile"] = [PROFILE_VITAL_SIGNS]
    if obs.value is not None:
        resource["valueQuantity"] = _quantity(obs.value, obs.unit)
        if obs.unit and obs.obs_category == "vital-signs":
            resource["valueQuantity"].update({"system": CS_UCUM, "code": obs.unit})
    elif obs.value_text:
        resource["valueString"] = obs.value_text
    if obs.abnormal:
        resource["interpretation"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": obs.abnormal,
                    }
                ]
            }
        ]
    reference: dict[str, Any] = {}
    if obs.reference_low is not None:
        reference["low"] = _quantity(obs.reference_low, obs.unit)
    if obs.reference_high is not None:
        reference["high"] = _quantity(obs.reference_high, obs.unit)
    if reference:
        resource["referenceRange"] = [reference]
    return resource


# Document types dpi knows: Document.type_code (LOINC typeCode) -> (display, TRE_A03 classCode, class display).
DOCUMENT_TYPES = DOCUMENT_TYPE_CODES


def document_hash(content: bytes) -> str:
    """Attachment.hash: base64 of the SHA-1 of the content (FHIR R4 datatype definition)."""
    return base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()


def document_reference_resource(doc: Document, *, content_url: str, content: bytes | None = None) -> dict[str, Any]:
    """``content`` (the decrypted bytes) gives the hash; without it the hash is left out."""
    attachment: dict[str, Any] = {
        "contentType": doc.media_type,
        "url": content_url,
        "size": doc.size,
        "title": doc.title,
        "creation": _instant(doc.created_at),
    }
    if content is not None:
        attachment["hash"] = document_hash(content)
    author = getattr(doc, "author", None)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": str(doc.pk),
        "meta": _clinical_meta(doc),
        "status": "current",
        "subject": _ref("Patient", doc.patient_id),
        "date": _instant(doc.created_at),
        "author": [
            {
                "identifier": {"system": "urn:dpi:user", "value": str(doc.author_id)},
                "display": (author.get_full_name() or author.username) if author else str(doc.author_id),
            }
        ],
        "description": doc.title,
        "content": [{"attachment": attachment}],
    }
    known = DOCUMENT_TYPES.get(doc.type_code)
    if known:
        display, class_code, class_display = known
        resource["type"] = {"coding": [{"system": CS_LOINC, "code": doc.type_code, "display": display}]}
        resource["category"] = [
            {"coding": [{"system": CS_DOCUMENT_CLASS, "code": class_code, "display": class_display}]}
        ]
    else:
        resource["type"] = {"text": doc.title}
    if doc.encounter_id:
        resource["context"] = {"encounter": [_ref("Encounter", doc.encounter_id)]}
    return resource


MEDICATION_REQUEST_STATUS = {"active": "active", "stopped": "stopped", "completed": "completed"}


def _dosage(prescription: Prescription) -> dict[str, Any]:
    dosage: dict[str, Any] = {"text": prescription.instructions}
    if prescription.frequency:
        dosage["timing"] = {"code": {"text": prescription.frequency}}
    if prescription.route:
        dosage["route"] = {"text": prescription.get_route_display()}
    if prescription.dose:
        dosage["doseAndRate"] = [{"type": {"text": "ordered"}, "doseQuantity": {"unit": prescription.dose}}]
    return dosage


def medication_request_resource(prescription: Prescription) -> dict[str, Any]:
    author = getattr(prescription, "author", None)
    validity: dict[str, str] = {"start": prescription.start.isoformat()}
    if prescription.end:
        validity["end"] = prescription.end.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": str(prescription.pk),
        "meta": _clinical_meta(prescription),
        "status": MEDICATION_REQUEST_STATUS.get(prescription.status, "unknown"),
        "intent": "order",
        "medicationCodeableConcept": {"text": prescription.medication},
        "subject": _ref("Patient", prescription.patient_id),
        "authoredOn": _instant(prescription.created_at),
        "requester": {
            "identifier": {"system": "urn:dpi:user", "value": str(prescription.author_id)},
            "display": (author.get_full_name() or author.username) if author else str(prescription.author_id),
        },
        "dosageInstruction": [_dosage(prescription)],
        "dispenseRequest": {"validityPeriod": validity},
    }
    if prescription.encounter_id:
        resource["encounter"] = _ref("Encounter", prescription.encounter_id)
    return resource


CS_SNOMED = "http://snomed.info/sct"
CS_ATC = "http://www.whocc.no/atc"
CS_UCUM = "http://unitsofmeasure.org"
PROFILE_VITAL_SIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"


def _allergy_code(allergy: Allergy) -> dict[str, Any]:
    code: dict[str, Any] = {"text": allergy.substance}
    if allergy.substance_code:
        # "No known allergy" is SNOMED CT 716186003; other codes are ATC (letters then digits) or SNOMED CT.
        system = CS_SNOMED if allergy.substance_code.isdigit() else CS_ATC
        code["coding"] = [{"system": system, "code": allergy.substance_code, "display": allergy.substance}]
    return code


def allergy_resource(allergy: Allergy) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": str(allergy.pk),
        "meta": _clinical_meta(allergy),
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": allergy.clinical_status,
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "code": allergy.verification,
                }
            ]
        },
        "code": _allergy_code(allergy),
        "patient": _ref("Patient", allergy.patient_id),
        "recordedDate": _instant(allergy.created_at),
        "criticality": allergy.severity,
    }
    if allergy.encounter_id:
        resource["encounter"] = _ref("Encounter", allergy.encounter_id)
    if allergy.reaction:
        resource["reaction"] = [{"manifestation": [{"text": allergy.reaction}]}]
    return resource


def condition_resource(problem: Problem) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": str(problem.pk),
        "meta": _clinical_meta(problem),
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": problem.status}]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": CS_CIM10_ATIH, "code": problem.icd10, "display": problem.label}],
            "text": problem.label,
        },
        "subject": _ref("Patient", problem.patient_id),
        "recordedDate": _instant(problem.created_at),
    }
    if problem.encounter_id:
        resource["encounter"] = _ref("Encounter", problem.encounter_id)
    if problem.onset:
        resource["onsetDateTime"] = problem.onset.isoformat()
    if problem.comment:
        resource["note"] = [{"text": problem.comment}]
    return resource


# --- AuditEvent -------------------------------------------------------------------------------------------
def audit_event_resource(event: AccessEvent, flags: audit_reports.Flags | None = None) -> dict[str, Any]:
    """IHE BALP shape: the same function as the patient access report (audit.reports), never a second one; a row
    in ``flags`` (audit.selectors.integrity_flags) carries the report's not-genuine ``meta.tag``."""
    return audit_reports.to_fhir_audit_event(event, flags)


def medication_administration_resource(record: MedicationAdministration) -> dict[str, Any]:
    """A dose given (``completed``) or not (``not-done`` with its reason), pointing at its MedicationRequest."""
    author = getattr(record, "author", None)
    rx = record.prescription
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": str(record.pk),
        "meta": _clinical_meta(record),
        "status": record.status,
        "medicationCodeableConcept": {"text": rx.medication},
        "subject": _ref("Patient", record.patient_id),
        "effectiveDateTime": _instant(record.administered_at),
        "performer": [{"actor": {
            "identifier": {"system": "urn:dpi:user", "value": str(record.author_id)},
            "display": (author.get_full_name() or author.username) if author else str(record.author_id),
        }}],
        "request": _ref("MedicationRequest", record.prescription_id),
    }
    if record.encounter_id:
        resource["context"] = _ref("Encounter", record.encounter_id)
    if record.status == "not-done" and record.reason_not_given:
        resource["statusReason"] = [{"text": record.reason_not_given}]
    if record.dose_given:
        resource["dosage"] = {"text": record.dose_given}
    return resource
