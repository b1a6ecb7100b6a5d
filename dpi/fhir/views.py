"""FHIR R4 read and search (/fhir/), through the same authentication, scopes, throttling, gate and audit as
/api/. Answers are ``application/fhir+json``; errors are OperationOutcome resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from access.policy import Action, Category
from access.unit_history import limit_unit_history
from audit import reports as audit_reports
from audit import selectors as audit_selectors
from audit.models import AccessEvent
from dpi.api.common import MAX_ID, ApiView, api_exception_handler
from dpi.api.scopes import AUDIT_VIEW, scope
from dpi.api.views import require_dpo
from dpi.fhir import mapping, search
from dpi.models import Allergy, Document, MedicationAdministration, Observation, Prescription, Problem
from patients import ins as ins_rules
from patients import selectors as patient_selectors
from patients import services as patient_services
from patients.models import Encounter, Patient

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT, MAX_COUNT = 20, 100


class FhirJSONRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "json"


# What _format and Accept may ask for: FHIR JSON only (XML and RDF are not served: 406).
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "fhir+json", "application/json+fhir"})
_ACCEPT_JSON = frozenset({"*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir"})


def check_format(request) -> None:
    """406 (an OperationOutcome) when the client asks only for a format this server does not produce."""
    wanted = request.GET.get("_format")
    if wanted is not None and wanted.split(";")[0].strip().lower() not in JSON_FORMATS:
        raise exceptions.NotAcceptable(f"_format={wanted[:40]} is not served; this server answers FHIR JSON only.")
    accept = request.META.get("HTTP_ACCEPT", "")
    if wanted is None and accept.strip():
        types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
        if not types & _ACCEPT_JSON and not any(t.startswith("text/html") for t in types):
            raise exceptions.NotAcceptable("Only application/fhir+json is served.")


class FhirContentNegotiation(BaseContentNegotiation):
    """JSON only: every answer is FHIR JSON (check_format refuses what asks for anything else)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    415: "not-supported",
    429: "throttled",
}


def operation_outcome(status_code: int, diagnostics: str, *, expression: list[str] | None = None) -> dict:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": _ISSUE_CODE.get(status_code, "processing"),
        "diagnostics": diagnostics,
    }
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _flatten(detail: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            out += _flatten(value, key if key not in {"non_field_errors", "detail"} else prefix)
        return out
    if isinstance(detail, list):
        return [pair for item in detail for pair in _flatten(item, prefix)]
    return [(prefix, str(detail))]


def _in_english(exc: Exception) -> Exception:
    """DRF's own messages are translated when they are raised (French by default); FHIR speaks English: a default
    message is given again in English (resources keep their French displays, so the request is not switched)."""
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        with translation.override("en"):
            return exceptions.Throttled(wait=exc.wait)
    if isinstance(exc, exceptions.APIException) and isinstance(exc.detail, str):
        default = type(exc).default_detail
        if str(exc.detail) == str(default):  # compared in the language it was raised in
            with translation.override("en"):
                exc.detail = exceptions.ErrorDetail(str(default), code=exc.detail.code)
    return exc


def fhir_exception_handler(exc, context):
    exc = _in_english(exc)
    with translation.override("en"):  # exceptions converted there (gate refusal, Http404) are built in English
        response = api_exception_handler(exc, context)
        if response is None:
            response = drf_exception_handler(exc, context)
    if response is None:
        return None
    pairs = _flatten(response.data)
    expression = sorted({p for p, _ in pairs if p}) or None
    diagnostics = "; ".join(f"{p}: {m}" if p else m for p, m in pairs) or "error"
    response.data = operation_outcome(response.status_code, diagnostics, expression=expression)
    return response


class FhirView(ApiView, APIView):
    renderer_classes = [FhirJSONRenderer]
    content_negotiation_class = FhirContentNegotiation
    parser_classes: list = []
    pagination_class = None
    metadata_class = None

    def get_exception_handler(self):
        return fhir_exception_handler

    def initial(self, request, *args, **kwargs):
        check_format(request)
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response

    def base_url(self) -> str:
        return self.request.build_absolute_uri("/fhir/")


# --- resource types ---------------------------------------------------------------------------------------
def _codes_of(choices) -> dict[str, str]:
    return {value: value for value in choices.values}


def _patient_params() -> dict[str, search.Param]:
    return {
        "patient": search.reference_param("patient", search.SP + "clinical-patient"),
        "subject": search.reference_param("subject", search.SP + "Observation-subject"),
    }


def _identifier_match(system: str | None, value: str) -> Q | None:
    ins_systems = {mapping.ins_system("NIR"), mapping.ins_system("NIA")}
    if value == "":
        return None
    ins_q = Q(
        ins_bidx=patient_services.ins_blind_index(ins_rules.normalise(value)),
        identity_status=Patient.IdentityStatus.QUALIFIED,
    )
    if system is None:
        return Q(ipp=value) | ins_q
    if system == settings.DPI_FHIR_IPP_SYSTEM:
        return Q(ipp=value)
    if system in ins_systems:
        # The INS is an identifier of qualified identities only (what we send is what we match).
        return ins_q
    return None


AUDIT_ACTIONS = [a for a in AccessEvent.Action.values]


def _audit_codes(fn) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for action in AUDIT_ACTIONS:
        out.setdefault(fn(action), []).append(action)
    return out


@dataclass(frozen=True)
class ResourceType:
    name: str
    category: Category
    gate_resource: str  # resource_type recorded in access events
    profile: str = ""
    params: dict[str, search.Param] = field(default_factory=dict)
    patient_required: bool = True
    supported_profiles: tuple[str, ...] = ()


def _params(*items: search.Param) -> dict[str, search.Param]:
    return {p.name: p for p in items}


PATIENT = ResourceType(
    "Patient",
    Category.ADMINISTRATIVE,
    "patient",
    mapping.PROFILE_PATIENT,
    _params(
        search.id_param(),
        search.token_param("identifier", search.SP + "Patient-identifier", _identifier_match,
                           documentation="IPP (system " + settings.DPI_FHIR_IPP_SYSTEM + ") or INS of a qualified "
                           "identity; system|value; comma for OR."),
        search.string_param("family", search.SP + "individual-family", ("birth_name", "used_name"),
                            sort="birth_name"),
        search.string_param("given", search.SP + "individual-given", ("first_name",), sort="first_name"),
        search.string_param("name", search.SP + "Patient-name", ("birth_name", "used_name", "first_name")),
        search.date_param("birthdate", search.SP + "individual-birthdate", "birth_date", is_date=True),
        search.token_param("gender", search.SP + "individual-gender",
                           search.coded("sex", ("http://hl7.org/fhir/administrative-gender",),
                                        codes={"other": []} | {v: k for k, v in mapping.GENDER.items()},
                                        closed=True)),
    ),
    patient_required=False,
    supported_profiles=(mapping.PROFILE_PATIENT, mapping.PROFILE_PATIENT_INS),
)
ENCOUNTER = ResourceType(
    "Encounter",
    Category.ADMINISTRATIVE,
    "encounter",
    mapping.PROFILE_ENCOUNTER,
    _params(
        search.id_param(),
        *_patient_params().values(),
        search.token_param("status", search.SP + "Encounter-status",
                           lambda system, code: None if system not in (None, "http://hl7.org/fhir/encounter-status")
                           else {"in-progress": Q(end__isnull=True), "finished": Q(end__isnull=False)}.get(code)),
        search.token_param("class", search.SP + "Encounter-class",
                           search.coded("kind", ("http://terminology.hl7.org/CodeSystem/v3-ActCode",),
                                        codes={code: kind for kind, (code, _) in mapping.ENCOUNTER_CLASS.items()})),
        search.date_param("date", search.SP + "clinical-date", "start", "end",
                          documentation="The encounter's period (an open end is ongoing); prefixes eq, ne, gt, "
                          "ge, lt, le, sa, eb; partial dates YYYY and YYYY-MM."),
    ),
    supported_profiles=(mapping.PROFILE_ENCOUNTER,),
)
OBSERVATION = ResourceType(
    "Observation",
    Category.MEDICAL,
    "observation",
    "",
    _params(
        search.id_param(),
        *_patient_params().values(),
        search.token_param("category", search.SP + "Observation-category",
                           search.coded("obs_category",
                                        ("http://terminology.hl7.org/CodeSystem/observation-category",),
                                        codes=_codes_of(Observation.Category))),
        search.token_param("code", search.SP + "clinical-code", search.coded("loinc", (mapping.CS_LOINC,)),
                           sort="loinc"),
        search.date_param("date", search.SP + "clinical-date", "effective_at"),
    ),
)
DOCUMENT_REFERENCE = ResourceType(
    "DocumentReference",
    Category.MEDICAL,
    "document",
    "",
    _params(
        search.id_param(),
        *_patient_params().values(),
        search.token_param("type", search.SP + "clinical-type", search.coded("type_code", (mapping.CS_LOINC,))),
        search.token_param("category", search.SP + "DocumentReference-category",
                           search.coded("type_code", (mapping.CS_DOCUMENT_CLASS,), codes={
                               cls: [t for t, (_, c, _) in mapping.DOCUMENT_TYPES.items() if c == cls]
                               for cls in {c for _, c, _ in mapping.DOCUMENT_TYPES.values()}})),
        search.date_param("date", search.SP + "DocumentReference-date", "created_at"),
    ),
)
ALLERGY = ResourceType(
    "AllergyIntolerance",
    Category.MEDICAL,
    "allergy",
    "",
    _params(
        search.id_param(),
        search.reference_param("patient", search.SP + "clinical-patient"),
        search.token_param("criticality", search.SP + "AllergyIntolerance-criticality",
                           search.coded("severity", ("http://hl7.org/fhir/allergy-intolerance-criticality",),
                                        codes=_codes_of(Allergy.Severity))),
        search.date_param("date", search.SP + "clinical-date", "created_at"),
    ),
)
CONDITION = ResourceType(
    "Condition",
    Category.MEDICAL,
    "problem",
    "",
    _params(
        search.id_param(),
        *_patient_params().values(),
        search.token_param("clinical-status", search.SP + "Condition-clinical-status",
                           search.coded("status", ("http://terminology.hl7.org/CodeSystem/condition-clinical",),
                                        codes=_codes_of(Problem.Status))),
        search.token_param("code", search.SP + "clinical-code", search.coded("icd10", (mapping.CS_CIM10_ATIH,)),
                           documentation="CIM-10 code (ATIH system " + mapping.CS_CIM10_ATIH + "); comma for OR.",
                           sort="icd10"),
        search.date_param("onset-date", search.SP + "Condition-onset-date", "onset", is_date=True),
        search.date_param("recorded-date", search.SP + "Condition-recorded-date", "created_at"),
    ),
)
MEDICATION_REQUEST = ResourceType(
    "MedicationRequest",
    Category.MEDICAL,
    "prescription",
    "",
    _params(
        search.id_param(),
        *_patient_params().values(),
        search.token_param("status", search.SP + "medications-status",
                           search.coded("status", ("http://hl7.org/fhir/CodeSystem/medicationrequest-status",),
                                        codes=_codes_of(Prescription.Status))),
        search.date_param("authoredon", search.SP + "MedicationRequest-authoredon", "created_at"),
    ),
)
MEDICATION_ADMINISTRATION = ResourceType(
    "MedicationAdministration",
    Category.MEDICAL,
    "medicationadministration",
    "",
    _params(
        search.id_param(),
        *_patient_params().values(),
        search.token_param("status", search.SP + "medications-status",
                           search.coded("status", ("http://terminology.hl7.org/CodeSystem/medication-admin-status",),
                                        codes=_codes_of(MedicationAdministration.Status))),
        search.date_param("effective-time", search.SP + "MedicationAdministration-effective-time",
                          "administered_at"),
    ),
)
AUDIT_EVENT = ResourceType(
    "AuditEvent",
    Category.ADMINISTRATIVE,
    "accessevent",
    "",
    _params(
        search.id_param(),
        search.reference_param("patient", search.SP + "AuditEvent-patient"),
        search.string_param("agent-name", search.SP + "AuditEvent-agent-name", ("actor_username",)),
        search.date_param("date", search.SP + "AuditEvent-date", "occurred_at"),
        search.token_param("outcome", search.SP + "AuditEvent-outcome",
                           search.coded("outcome", ("http://terminology.hl7.org/CodeSystem/audit-event-outcome",),
                                        codes={code: outcome for outcome, code in
                                               audit_reports.OUTCOME_CODE.items()} | {"8": [], "12": []}),
                           documentation="0 success (allowed), 4 minor failure (refused by the gate); 8 and 12 "
                           "(serious and major failures) are never recorded as access events."),
        search.token_param("action", search.SP + "AuditEvent-action",
                           search.coded("action", ("http://hl7.org/fhir/audit-event-action",),
                                        codes=_audit_codes(audit_reports.fhir_action))),
        search.token_param("subtype", search.SP + "AuditEvent-subtype",
                           lambda system, code: _audit_subtype(system, code)),
    ),
    patient_required=False,
)


def _audit_subtype(system: str | None, code: str) -> Q | None:
    wanted = [a for a in AUDIT_ACTIONS
              if audit_reports.fhir_subtype(a)[1] == code
              and system in (None, audit_reports.fhir_subtype(a)[0])]
    return Q(action__in=wanted) if wanted else None


TYPES = {
    t.name: t
    for t in (PATIENT, ENCOUNTER, OBSERVATION, DOCUMENT_REFERENCE, ALLERGY, CONDITION, MEDICATION_REQUEST,
              MEDICATION_ADMINISTRATION, AUDIT_EVENT)
}


class _TypedView(FhirView):
    interaction = "read"

    def initial(self, request, *args, **kwargs):
        rtype = TYPES.get(kwargs.get("resource_type", ""))
        if rtype is None:
            # Before authentication: the list of supported types is public (CapabilityStatement).
            raise exceptions.NotFound(
                f"Resource type {kwargs.get('resource_type', '')!r} is not supported here (see /fhir/metadata)."
            )
        self.rtype = rtype
        self.category = rtype.category
        self.resource_type = rtype.gate_resource
        super().initial(request, *args, **kwargs)

    def matrix_action(self) -> str | None:
        return None if self.rtype is AUDIT_EVENT else Action.VIEW

    def required_scope(self, request) -> str | None:
        if self.rtype is AUDIT_EVENT:
            return AUDIT_VIEW
        if self.rtype is PATIENT and self.interaction == "search":
            return scope(Category.ADMINISTRATIVE, Action.SEARCH)
        return scope(self.rtype.category, Action.VIEW)

    def to_resources(self, rows: list) -> list[dict[str, Any]]:
        name = self.rtype.name
        if name == "DocumentReference":
            # The hash needs the (encrypted) content: one query for the page's documents.
            contents = dict(Document.objects.filter(pk__in=[r.pk for r in rows]).values_list("pk", "content"))
            return [
                mapping.document_reference_resource(
                    row,
                    content_url=self.request.build_absolute_uri(f"/api/documents/{row.pk}/content/"),
                    content=contents.get(row.pk),
                )
                for row in rows
            ]
        if name == "AuditEvent":
            # Rows the chain quarantined or the last verify_audit named are tagged not genuine (as in the report).
            flags = audit_selectors.integrity_flags(rows)
            return [mapping.audit_event_resource(row, flags) for row in rows]
        build = {
            "Patient": mapping.patient_resource,
            "Encounter": mapping.encounter_resource,
            "Observation": mapping.observation_resource,
            "AllergyIntolerance": mapping.allergy_resource,
            "Condition": mapping.condition_resource,
            "MedicationRequest": mapping.medication_request_resource,
            "MedicationAdministration": mapping.medication_administration_resource,
        }[name]
        return [build(row) for row in rows]

    def to_resource(self, obj) -> dict[str, Any]:
        return self.to_resources([obj])[0]

    def queryset(self) -> QuerySet:
        if self.rtype.name == "Encounter":
            # Unit history is health data: administrative-only principals see current stays.
            return limit_unit_history(Encounter.objects.select_related("unit"), user=self.request.user,
                                      scopes=getattr(self.request.auth, "scopes", None))
        return {
            "Patient": Patient.objects.all(),
            "Observation": Observation.objects.all(),
            "DocumentReference": Document.objects.defer("content").select_related("author"),
            "AllergyIntolerance": Allergy.objects.all(),
            "Condition": Problem.objects.all(),
            "MedicationRequest": Prescription.objects.select_related("author"),
            "MedicationAdministration": MedicationAdministration.objects.select_related("author", "prescription"),
            "AuditEvent": AccessEvent.objects.all(),
        }[self.rtype.name]


class ReadView(_TypedView):
    """GET /fhir/<type>/<id>"""

    interaction = "read"

    def _gated_read(self, pk: int) -> Any:
        if self.rtype is PATIENT:
            # The row is read in the statement that records the access (one round trip).
            return self.gate_read(patient_id=pk, reader=patient_selectors.patient_reader)
        obj = self.queryset().filter(pk=pk).first()
        if obj is not None:
            self.gate(patient_id=obj.patient_id, action=Action.VIEW, resource_id=pk,
                      category=getattr(obj, "category", None) or self.category)
        return obj

    def get(self, request, resource_type: str, pk: str):
        if not pk.isdigit() or not 1 <= int(pk) <= MAX_ID:
            raise exceptions.NotFound(f"{resource_type}/{pk} not found")
        pk_int = int(pk)
        if self.rtype is AUDIT_EVENT:
            require_dpo(request, {"id": pk_int})
            # A forged row may reuse a genuine event's id: read the genuine one (the search lists both, the
            # forged one tagged not genuine); a row that is the only one with its id is tagged if it is named.
            rows = list(self.queryset().filter(pk=pk_int).order_by("occurred_at"))
            flags = audit_selectors.integrity_flags(rows)
            obj = next((r for r in rows if (r.id, r.occurred_at) not in flags), rows[0] if rows else None)
        else:
            try:
                obj = self._gated_read(pk_int)
            except exceptions.NotFound:
                obj = None  # a patient the user may not know: the very answer of a missing id
        if obj is None:
            raise exceptions.NotFound(f"{resource_type}/{pk} not found")
        headers = {}
        if getattr(obj, "version", None):
            headers["ETag"] = f'W/"{obj.version}"'
        return Response(self.to_resource(obj), headers=headers)


class SearchView(_TypedView):
    """GET /fhir/<type>?params: a searchset Bundle (FHIR R4 search semantics, dpi.fhir.search), paged with
    _count and _offset; every page's links identify that page."""

    interaction = "search"

    def get(self, request, resource_type: str):
        query = search.parse(
            request, self.rtype.params, default_count=DEFAULT_COUNT, max_count=MAX_COUNT, max_id=MAX_ID
        )
        queryset = search.apply(self._scoped(query), query)
        base = f"{self.base_url()}{self.rtype.name}"

        def url(offset: int | None) -> str:
            return f"{base}?{urlencode(search.link_params(query, offset=offset))}"

        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        total = queryset.count() if (query.total or query.summary_count) else None
        if query.summary_count or query.count == 0:
            bundle["total"] = total if total is not None else queryset.count()
            bundle["link"] = [{"relation": "self", "url": url(None)}]
            return Response(bundle)
        rows = list(queryset.order_by(*query.sort)[query.offset : query.offset + query.count + 1])
        more = len(rows) > query.count
        rows = rows[: query.count]
        if total is not None:
            bundle["total"] = total
        links = [{"relation": "self", "url": url(query.offset)}, {"relation": "first", "url": url(None)}]
        if query.offset:
            links.append({"relation": "previous", "url": url(max(0, query.offset - query.count))})
        if more:
            links.append({"relation": "next", "url": url(query.offset + query.count)})
        bundle["link"] = links
        bundle["entry"] = [
            {"fullUrl": self._full_url(base, row, resource), "resource": resource, "search": {"mode": "match"}}
            for row, resource in zip(rows, self.to_resources(rows), strict=True)
        ]
        return Response(bundle)

    @staticmethod
    def _full_url(base: str, row, resource: dict[str, Any]) -> str:
        """The entry's URL; a not-genuine AuditEvent gets its own (a forged row reusing an id must not share the
        genuine row's fullUrl), as in the access report's Bundle."""
        if any(tag.get("system") == audit_reports.INTEGRITY_SYSTEM for tag in resource.get("meta", {}).get("tag", [])):
            return "urn:uuid:" + audit_reports.fhir_entry_uuid(row, not_genuine=True)
        return f"{base}/{row.pk}"

    def _scoped(self, query: search.Query) -> QuerySet:
        """The rows this user may search, after the gate: visible patients, the DPO's trace, or the records of
        the named patients (each one asked of the gate)."""
        if self.rtype is PATIENT:
            if not query.used and query.ignored:
                # Only unknown parameters: name them, not a parameter the caller did not send.
                raise exceptions.ValidationError({
                    name: ["Unknown search parameter for Patient: give at least one of "
                           + ", ".join(sorted(PATIENT.params)) + " (see /fhir/metadata)."]
                    for name in query.ignored
                })
            if not query.used:
                raise search.bad(
                    "identifier", "Give at least one of " + ", ".join(sorted(PATIENT.params)) + "."
                )
            # An exact identifier alone is reception's arrival lookup (access.policy, EXACT_LOOKUP_ROLES).
            exact = list(query.used) == ["identifier"]
            return self.search_patients(Patient.objects.all(), query=" ".join(query.used), exact=exact)
        if self.rtype is AUDIT_EVENT:
            filters: dict[str, Any] = {"search": "&".join(f"{k}={v}" for k, v in query.kept)[:300]}
            if query.patients is not None:
                filters["patient"] = query.patients[0] if len(query.patients) == 1 else None
            require_dpo(self.request, filters)
            queryset = AccessEvent.objects.all()
            if query.patients is not None:
                queryset = queryset.filter(patient_id__in=query.patients)
            return queryset
        if query.patients is None:
            raise search.bad("patient", f"Searching {self.rtype.name} needs patient=<id>.")
        for patient_id in query.named_patients:
            self.gate(patient_id=patient_id, action=Action.VIEW)
        return self.queryset().filter(patient_id__in=query.patients)


EXT_MODIFIER = "urn:dpi:fhir:search-modifier"
EXT_PREFIX = "urn:dpi:fhir:search-prefix"


def capability_search_params(rtype: ResourceType) -> list[dict[str, Any]]:
    """Each declared parameter, its definition, and (machine-readable, as extensions) its modifiers and
    prefixes; the conformance test exercises exactly these."""
    out = []
    for param in rtype.params.values():
        entry: dict[str, Any] = {
            "name": param.name,
            "definition": param.definition,
            "type": param.type,
            "documentation": param.documentation,
        }
        extensions = [{"url": EXT_MODIFIER, "valueCode": m} for m in param.modifiers]
        extensions += [{"url": EXT_PREFIX, "valueCode": p} for p in param.prefixes]
        if extensions:
            entry["extension"] = extensions
        out.append(entry)
    return out


class MetadataView(FhirView):
    """GET /fhir/metadata: the CapabilityStatement (public, as FHIR clients discover the server with it)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def required_scope(self, request) -> str | None:
        return None

    def get(self, request):
        resources = []
        for rtype in TYPES.values():
            sortable = sorted(name for name, p in rtype.params.items() if p.sort)
            entry: dict[str, Any] = {
                "type": rtype.name,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": capability_search_params(rtype),
            }
            if rtype.profile:
                entry["profile"] = rtype.profile
            if rtype.supported_profiles:
                entry["supportedProfile"] = list(rtype.supported_profiles)
            notes = [f"_sort on {', '.join(sortable)}; _count (0-{MAX_COUNT}), _offset, _total, _summary=count."]
            if rtype is AUDIT_EVENT:
                notes.insert(0, "DPO only (scope audit:view); reading the trace is itself recorded; IHE BALP shape.")
            elif rtype.patient_required:
                notes.insert(0, "Search needs patient=<id> (each patient goes through the access gate).")
            entry["documentation"] = " ".join(notes)
            resources.append(entry)
        return Response(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": timezone.now().date().isoformat(),
                "publisher": "dpi",
                "kind": "instance",
                "software": {"name": "dpi", "version": "0.1.0"},
                "implementation": {
                    "description": "dpi FHIR R4 read/search API",
                    "url": self.base_url().rstrip("/"),
                },
                "fhirVersion": "4.0.1",
                "format": [FHIR_JSON],
                "implementationGuide": [mapping.FR_CORE + "/ImplementationGuide/hl7.fhir.fr.core"],
                "rest": [
                    {
                        "mode": "server",
                        "documentation": "Reads and searches go through dpi's access gate and are recorded "
                        "(docs/api.md). Unknown parameters are ignored (and left out of the self link) unless "
                        "the request says Prefer: handling=strict, which refuses them with a 400.",
                        "security": {
                            "cors": False,
                            "description": (
                                "Authorization: Bearer <API client token> with scopes '<category>:<action>' "
                                "(administrative:view, administrative:search, medical:view, audit:view); "
                                "or a signed-in session with a verified second factor."
                            ),
                        },
                        "resource": resources,
                    }
                ],
            }
        )


class NotFoundView(FhirView):
    """Any other /fhir/ path: an OperationOutcome, not an HTML page."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def required_scope(self, request) -> str | None:
        return None

    def get(self, request, *args, **kwargs):
        raise exceptions.NotFound("No such FHIR endpoint (see /fhir/metadata).")

    post = put = patch = delete = get
