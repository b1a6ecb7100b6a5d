"""FHIR R4 read and search (/fhir/), through the same authentication, scopes, throttling, gate and audit as
/api/. Answers are ``application/fhir+json``; errors are OperationOutcome resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from access.policy import Action, Category
from audit.models import AccessEvent
from dpi.api.common import MAX_ID, ApiView, api_exception_handler
from dpi.api.scopes import AUDIT_VIEW, scope
from dpi.api.views import require_dpo
from dpi.fhir import mapping
from dpi.models import Allergy, Document, Observation, Problem
from patients import ins as ins_rules
from patients import services as patient_services
from patients.models import Encounter, Patient

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT, MAX_COUNT = 20, 100


class FhirJSONRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "json"


class FhirContentNegotiation(BaseContentNegotiation):
    """JSON only: every answer is FHIR JSON, whatever Accept says."""

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


def fhir_exception_handler(exc, context):
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

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response

    def base_url(self) -> str:
        return self.request.build_absolute_uri("/fhir/")


# --- search parameters ------------------------------------------------------------------------------------
def _bad(param: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({param: [message]})


def _patient_param(params, names=("patient", "subject")) -> int | None:
    for name in names:
        raw = params.get(name)
        if raw is None:
            continue
        value = raw.split("/", 1)[1] if raw.startswith("Patient/") else raw
        if not value.isdigit() or not 1 <= int(value) <= MAX_ID:
            raise _bad(name, "A patient id or Patient/<id>.")
        return int(value)
    return None


def _token(raw: str) -> tuple[str | None, str]:
    """``system|code`` or ``code``."""
    if "|" in raw:
        system, _, code = raw.partition("|")
        return system, code
    return None, raw


_DATE_RE = re.compile(r"^(eq|ge|gt|le|lt)?(\d{4}-\d{2}-\d{2})$")


def _date_filter(queryset: QuerySet, field_name: str, values: list[str], param: str) -> QuerySet:
    for raw in values:
        match = _DATE_RE.match(raw)
        if not match:
            raise _bad(param, "A date YYYY-MM-DD with an optional prefix eq, ge, gt, le, lt.")
        prefix, day = match.group(1) or "eq", match.group(2)
        try:
            d = date.fromisoformat(day)
        except ValueError as exc:
            raise _bad(param, "Not a calendar date.") from exc
        start = timezone.make_aware(datetime.combine(d, time.min))
        end = start + timedelta(days=1)
        lookups = {
            "eq": Q(**{f"{field_name}__gte": start, f"{field_name}__lt": end}),
            "ge": Q(**{f"{field_name}__gte": start}),
            "gt": Q(**{f"{field_name}__gte": end}),
            "le": Q(**{f"{field_name}__lt": end}),
            "lt": Q(**{f"{field_name}__lt": start}),
        }
        queryset = queryset.filter(lookups[prefix])
    return queryset


# --- resource types ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceType:
    name: str
    category: Category
    gate_resource: str  # resource_type recorded in access events
    profile: str = ""
    search_params: dict[str, str] = field(default_factory=dict)  # name -> FHIR search param type, documented
    patient_required: bool = True


PATIENT = ResourceType(
    "Patient",
    Category.ADMINISTRATIVE,
    "patient",
    mapping.PROFILE_PATIENT,
    {
        "_id": "token",
        "identifier": "token",
        "family": "string",
        "given": "string",
        "name": "string",
        "birthdate": "date",
    },
    patient_required=False,
)
ENCOUNTER = ResourceType(
    "Encounter",
    Category.ADMINISTRATIVE,
    "encounter",
    mapping.PROFILE_ENCOUNTER,
    {"patient": "reference", "subject": "reference", "status": "token"},
)
OBSERVATION = ResourceType(
    "Observation",
    Category.MEDICAL,
    "observation",
    "",
    {"patient": "reference", "subject": "reference", "category": "token", "code": "token", "date": "date"},
)
DOCUMENT_REFERENCE = ResourceType(
    "DocumentReference", Category.MEDICAL, "document", "", {"patient": "reference", "subject": "reference"}
)
ALLERGY = ResourceType("AllergyIntolerance", Category.MEDICAL, "allergy", "", {"patient": "reference"})
CONDITION = ResourceType(
    "Condition",
    Category.MEDICAL,
    "problem",
    "",
    {"patient": "reference", "subject": "reference", "clinical-status": "token"},
)
AUDIT_EVENT = ResourceType(
    "AuditEvent",
    Category.ADMINISTRATIVE,
    "accessevent",
    "",
    {"patient": "reference", "agent-name": "string", "date": "date", "outcome": "token", "action": "token"},
    patient_required=False,
)
TYPES = {t.name: t for t in (PATIENT, ENCOUNTER, OBSERVATION, DOCUMENT_REFERENCE, ALLERGY, CONDITION, AUDIT_EVENT)}


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

    def required_scope(self, request) -> str | None:
        if self.rtype is AUDIT_EVENT:
            return AUDIT_VIEW
        if self.rtype is PATIENT and self.interaction == "search":
            return scope(Category.ADMINISTRATIVE, Action.SEARCH)
        return scope(self.rtype.category, Action.VIEW)

    def to_resource(self, obj) -> dict[str, Any]:
        name = self.rtype.name
        if name == "Patient":
            return mapping.patient_resource(obj)
        if name == "Encounter":
            return mapping.encounter_resource(obj)
        if name == "Observation":
            return mapping.observation_resource(obj)
        if name == "DocumentReference":
            url = self.request.build_absolute_uri(f"/api/documents/{obj.pk}/content/")
            return mapping.document_reference_resource(obj, content_url=url)
        if name == "AllergyIntolerance":
            return mapping.allergy_resource(obj)
        if name == "Condition":
            return mapping.condition_resource(obj)
        return mapping.audit_event_resource(obj)

    def queryset(self) -> QuerySet:
        return {
            "Patient": Patient.objects.all(),
            "Encounter": Encounter.objects.select_related("unit"),
            "Observation": Observation.objects.all(),
            "DocumentReference": Document.objects.defer("content"),
            "AllergyIntolerance": Allergy.objects.all(),
            "Condition": Problem.objects.all(),
            "AuditEvent": AccessEvent.objects.all(),
        }[self.rtype.name]


class ReadView(_TypedView):
    """GET /fhir/<type>/<id>"""

    interaction = "read"

    def get(self, request, resource_type: str, pk: str):
        if not pk.isdigit() or not 1 <= int(pk) <= MAX_ID:
            raise exceptions.NotFound(f"{resource_type}/{pk} not found")
        pk_int = int(pk)
        if self.rtype is AUDIT_EVENT:
            require_dpo(request, {"id": pk_int})
            obj = self.queryset().filter(pk=pk_int).first()
        elif self.rtype is PATIENT:
            self.gate(patient_id=pk_int, action=Action.VIEW, resource_id=pk_int)
            obj = self.queryset().filter(pk=pk_int).first()
        else:
            obj = self.queryset().filter(pk=pk_int).first()
            if obj is not None:
                self.gate(
                    patient_id=obj.patient_id,
                    action=Action.VIEW,
                    resource_id=pk_int,
                    category=getattr(obj, "category", None) or self.category,
                )
        if obj is None:
            raise exceptions.NotFound(f"{resource_type}/{pk} not found")
        headers = {}
        if getattr(obj, "version", None):
            headers["ETag"] = f'W/"{obj.version}"'
        return Response(self.to_resource(obj), headers=headers)


class SearchView(_TypedView):
    """GET /fhir/<type>?params: a searchset Bundle, newest first, paged with _count and an opaque cursor."""

    interaction = "search"

    def get(self, request, resource_type: str):
        params = request.query_params
        count = self._count(params)
        queryset = self._filtered(params)
        cursor = params.get("_cursor")
        if cursor is not None:
            if not cursor.isdigit() or not 1 <= int(cursor) <= MAX_ID:
                raise _bad("_cursor", "Invalid cursor.")
            queryset = queryset.filter(pk__lt=int(cursor))
        rows = list(queryset.order_by("-pk")[: count + 1])
        more = len(rows) > count
        rows = rows[:count]
        base = self.base_url()
        kept = [(k, v) for k, vs in params.lists() if k != "_cursor" for v in vs]
        self_url = f"{base}{self.rtype.name}" + (f"?{urlencode(kept)}" if kept else "")
        links = [{"relation": "self", "url": self_url}]
        if more:
            links.append(
                {
                    "relation": "next",
                    "url": f"{base}{self.rtype.name}?{urlencode([*kept, ('_cursor', rows[-1].pk)])}",
                }
            )
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}{self.rtype.name}/{row.pk}",
                    "resource": self.to_resource(row),
                    "search": {"mode": "match"},
                }
                for row in rows
            ],
        }
        return Response(bundle)

    @staticmethod
    def _count(params) -> int:
        raw = params.get("_count")
        if raw is None:
            return DEFAULT_COUNT
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
            raise _bad("_count", f"An integer from 1 to {MAX_COUNT}.")
        return int(raw)

    def _filtered(self, params) -> QuerySet:
        if self.rtype is PATIENT:
            return self._patients(params)
        if self.rtype is AUDIT_EVENT:
            return self._audit_events(params)
        patient_id = _patient_param(params)
        if patient_id is None:
            raise _bad("patient", f"Searching {self.rtype.name} needs patient=<id>.")
        self.gate(patient_id=patient_id, action=Action.VIEW)
        queryset = self.queryset().filter(patient_id=patient_id)
        if self.rtype is OBSERVATION:
            if params.get("category"):
                queryset = queryset.filter(obs_category=_token(params["category"])[1])
            if params.get("code"):
                system, code = _token(params["code"])
                if system not in (None, "", "http://loinc.org"):
                    return queryset.none()
                queryset = queryset.filter(loinc=code)
            queryset = _date_filter(queryset, "effective_at", params.getlist("date"), "date")
        elif self.rtype is CONDITION and params.get("clinical-status"):
            queryset = queryset.filter(status=_token(params["clinical-status"])[1])
        elif self.rtype is ENCOUNTER and params.get("status"):
            status = _token(params["status"])[1]
            queryset = (
                queryset.filter(end__isnull=status == "in-progress")
                if status in {"in-progress", "finished"}
                else queryset.none()
            )
        return queryset

    def _patients(self, params) -> QuerySet:
        queryset = Patient.objects.all()
        used = []
        if params.get("_id"):
            ids = [v for v in params["_id"].split(",") if v.isdigit() and 1 <= int(v) <= MAX_ID]
            queryset = queryset.filter(pk__in=[int(v) for v in ids])
            used.append("_id")
        if params.get("identifier"):
            system, value = _token(params["identifier"])
            if system not in (None, "") and system not in {
                mapping.ins_system("NIR"),
                mapping.ins_system("NIA"),
                settings.DPI_FHIR_IPP_SYSTEM,
            }:
                queryset = queryset.none()
            elif system == settings.DPI_FHIR_IPP_SYSTEM:
                queryset = queryset.filter(ipp=value)
            elif system:
                # The INS is an identifier of qualified identities only (what we send is what we match).
                queryset = queryset.filter(
                    ins_bidx=patient_services.ins_blind_index(ins_rules.normalise(value)),
                    identity_status=Patient.IdentityStatus.QUALIFIED,
                )
            else:
                queryset = queryset.filter(
                    Q(ipp=value)
                    | Q(
                        ins_bidx=patient_services.ins_blind_index(ins_rules.normalise(value)),
                        identity_status=Patient.IdentityStatus.QUALIFIED,
                    )
                )
            used.append("identifier")
        for name, lookup in (
            ("family", ("birth_name", "used_name")),
            ("given", ("first_name",)),
            ("name", ("birth_name", "used_name", "first_name")),
        ):
            value = params.get(name)
            if value:
                if len(value) > 100:
                    raise _bad(name, "At most 100 characters.")
                condition = Q()
                for column in lookup:
                    condition |= Q(**{f"{column}__istartswith": value})
                queryset = queryset.filter(condition)
                used.append(name)
        if params.get("birthdate"):
            try:
                queryset = queryset.filter(birth_date=date.fromisoformat(params["birthdate"]))
            except ValueError as exc:
                raise _bad("birthdate", "A date YYYY-MM-DD.") from exc
            used.append("birthdate")
        if not used:
            raise _bad("identifier", "Give at least one of _id, identifier, family, given, name, birthdate.")
        # An exact identifier alone is the arrival lookup of reception (access.policy, EXACT_LOOKUP_ROLES).
        return self.search_patients(queryset, query=" ".join(used), exact=used == ["identifier"])

    def _audit_events(self, params) -> QuerySet:
        filters: dict[str, Any] = {}
        patient_id = _patient_param(params, names=("patient",))
        if patient_id is not None:
            filters["patient"] = patient_id
        if params.get("agent-name"):
            filters["actor"] = params["agent-name"][:150]
        require_dpo(self.request, filters)
        queryset = AccessEvent.objects.all()
        if patient_id is not None:
            queryset = queryset.filter(patient_id=patient_id)
        if "actor" in filters:
            queryset = queryset.filter(actor_username=filters["actor"])
        if params.get("outcome"):
            outcome = _token(params["outcome"])[1]
            queryset = queryset.filter(outcome="allowed" if outcome == "0" else "denied")
        if params.get("action"):
            wanted = _token(params["action"])[1]
            actions = [a for a, code in mapping._ACTION.items() if code == wanted]
            queryset = (
                queryset.filter(action__in=actions)
                if wanted != "E"
                else queryset.exclude(action__in=[a for a, code in mapping._ACTION.items() if code != "E"])
            )
        return _date_filter(queryset, "occurred_at", params.getlist("date"), "date")


class MetadataView(FhirView):
    """GET /fhir/metadata: the CapabilityStatement (public, as FHIR clients discover the server with it)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def required_scope(self, request) -> str | None:
        return None

    def get(self, request):
        resources = []
        for rtype in TYPES.values():
            entry: dict[str, Any] = {
                "type": rtype.name,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": name, "type": kind} for name, kind in rtype.search_params.items()],
            }
            if rtype.profile:
                entry["profile"] = rtype.profile
            if rtype is PATIENT:
                entry["supportedProfile"] = [mapping.PROFILE_PATIENT_INS]
            if rtype is AUDIT_EVENT:
                entry["documentation"] = "DPO only (scope audit:view); reading the trace is itself recorded."
            elif rtype.patient_required:
                entry["documentation"] = "Search needs patient=<id>."
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
                "rest": [
                    {
                        "mode": "server",
                        "documentation": "Reads and searches go through dpi's access gate and are recorded "
                        "(docs/api.md).",
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
