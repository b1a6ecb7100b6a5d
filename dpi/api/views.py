"""REST endpoints for hospital systems (/api/). Thin: validate, ask the gate, call a service, serialize.

Scopes per endpoint are the viewset's ``category`` and the gate action of ``scope_actions``.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser

from access import gate
from access import services as access_services
from access.models import CareTeamMembership
from access.policy import CARE_STAFF_ROLES, Action, Category, Role
from access.unit_history import limit_unit_history
from audit import selectors as audit_selectors
from audit.models import AccessEvent
from audit.services import event_record
from dpi import services as clinical_services
from dpi.api import serializers as s
from dpi.api.authentication import api_details, principal_of
from dpi.api.common import (
    ETAG_HEADER,
    IF_MATCH_OPTIONAL,
    IF_MATCH_REQUIRED,
    ApiView,
    check_if_match,
    etag_response,
    parse_id,
)
from dpi.api.idempotency import idempotent
from dpi.api.scopes import AUDIT_VIEW
from dpi.models import Document, Observation
from patients import ins as ins_rules
from patients import selectors as patient_selectors
from patients import services as patient_services
from patients.models import Encounter, Patient


def api_docs(request):
    """Swagger UI over /api/schema/ (assets served locally, init script under the page's CSP nonce).

    The page itself holds no data and opens without a session: an integrator pastes an API token
    (``manage.py api_client``) and Swagger UI sends it as ``Authorization: Bearer`` with every request, the
    schema's included. The schema stays behind a token or a verified session (it maps the attack surface);
    a signed-in user's session loads it directly (the second-factor step is enforced by the middleware)."""
    return render(request, "api/docs.html", {"signed_in": request.user.is_authenticated})


@csrf_exempt  # it changes nothing; without this a POST would get Django's HTML CSRF page instead
def api_not_found(request, *args, **kwargs):
    return JsonResponse({"detail": str(exceptions.NotFound.default_detail)}, status=404)  # DRF's words


def _location(kind: str, pk: int) -> dict[str, str]:
    return {"Location": f"/api/{kind}/{pk}/"}


def _patient_filter(request) -> int:
    f = s.PatientFilterSerializer(data=request.query_params)
    f.is_valid(raise_exception=True)
    return f.validated_data["patient"]


def _get_or_404(queryset, pk):
    obj = queryset.filter(pk=parse_id(pk)).first()
    if obj is None:
        raise exceptions.NotFound()
    return obj


def _known_or_missing(view, *, patient_id: int, action: str, category: Category | str | None = None,
                      known_by: tuple[Category, Action] | None = None, missing: str = "404",
                      resource_id: object = "", details: dict | None = None) -> None:
    """First thing a write naming a patient does: a patient the principal may not know (unknown, or restricted
    and not visible to it) gets exactly the answer of a missing one (``gate.refusal_if_unknown``, recorded)."""
    refused = gate.refusal_if_unknown(
        view.request.user, patient_id=patient_id, category=category or view.category, action=action,
        known_by=known_by, resource_type=view.resource_type, resource_id=resource_id,
        details={**api_details(view.request), **(details or {})})
    if refused is None:
        return
    if missing == "400":
        raise exceptions.ValidationError({"patient": [_("Unknown patient.")]})
    raise exceptions.NotFound()


# Whole sentences, so that each translates as one (the French verb is not the English one).
_IDENTITY_VIGILANCE_ONLY = {
    "merge": gettext_noop("Only the identity-vigilance cell may merge files."),
    "unmerge": gettext_noop("Only the identity-vigilance cell may unmerge files."),
    "split": gettext_noop("Only the identity-vigilance cell may split files."),
}

_IDENTITY = (Category.ADMINISTRATIVE, Action.VIEW)  # who may know a patient's identity file: who may read it


class _Base(ApiView, viewsets.GenericViewSet):
    metadata_class = None  # no OPTIONS introspection

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        # Patient data must not be kept by shared caches or the browser.
        response["Cache-Control"] = "no-store"
        return response


# --- patients ---------------------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(
        summary="Search patients (INS, name, birth date)",
        parameters=[s.PatientSearchSerializer],
        responses=s.PatientSerializer(many=True),
    ),
    retrieve=extend_schema(
        summary="Read a patient's identity", responses=s.PatientSerializer, parameters=[ETAG_HEADER]
    ),
    create=extend_schema(
        summary="Create a patient identity",
        request=s.PatientWriteSerializer,
        responses={201: s.PatientSerializer},
        parameters=[ETAG_HEADER],
    ),
    partial_update=extend_schema(
        summary="Change identity or contact fields",
        request=s.PatientUpdateSerializer,
        responses=s.PatientSerializer,
        parameters=[IF_MATCH_REQUIRED, ETAG_HEADER],
    ),
)
class PatientViewSet(_Base):
    """Administrative identity. Searches go through ``gate.visible_patients`` (restricted ones masked)."""

    category = Category.ADMINISTRATIVE
    resource_type = "patient"
    scope_actions = {
        "list": Action.SEARCH,
        "retrieve": Action.VIEW,
        "create": Action.CREATE,
        "partial_update": Action.AMEND,
        "insi": Action.AMEND,
        "merge": Action.AMEND,
        "unmerge": Action.AMEND,
        "split": Action.AMEND,
    }
    serializer_class = s.PatientSerializer
    queryset = Patient.objects.none()

    def list(self, request):
        f = s.PatientSearchSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        q = f.validated_data
        queryset = Patient.objects.all()
        if q.get("ipp"):
            queryset = queryset.filter(ipp=q["ipp"])
        if q.get("ins"):
            queryset = queryset.filter(ins_bidx=patient_services.ins_blind_index(ins_rules.normalise(q["ins"])))
        if q.get("family"):
            queryset = queryset.filter(Q(birth_name__istartswith=q["family"]) | Q(used_name__istartswith=q["family"]))
        if q.get("given"):
            queryset = queryset.filter(first_name__istartswith=q["given"])
        if q.get("birth_date"):
            queryset = queryset.filter(birth_date=q["birth_date"])
        query = " ".join(str(q[k]) for k in ("family", "given", "birth_date") if q.get(k))
        # An exact identifier alone (IPP, INS) is the arrival lookup of reception (access.policy).
        exact = bool(q.get("ipp") or q.get("ins")) and not any(q.get(k) for k in ("family", "given", "birth_date"))
        queryset = self.search_patients(
            queryset, query=query + (" ins" if q.get("ins") else "") + (" ipp" if q.get("ipp") else ""), exact=exact
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.PatientSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        pk = parse_id(pk)
        # The row is read in the statement that records the access (one round trip).
        patient = self.gate_read(patient_id=pk, reader=patient_selectors.patient_reader)
        if patient is None:
            raise exceptions.NotFound()
        return etag_response(s.PatientSerializer(patient).data, patient)

    def create(self, request):
        body = s.PatientWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)

        def perform():
            self.gate(patient_id=None, action=Action.CREATE)
            patient = patient_services.patient_create(actor=request.user, **body.validated_data)
            self.written = (patient.pk, self.category, self.resource_type, patient.pk)
            # Probable duplicates the principal may not know are not named (recorded refusals); it is told that
            # one exists, for identity vigilance, which has the suspicion (DuplicateSuspicion).
            candidates = patient.probable_duplicates
            shown, hidden = gate.split_visible(request.user, [other.pk for other, _why in candidates],
                                               details={"duplicate_of": patient.pk, **api_details(request)})
            patient.probable_duplicates = [(other, why) for other, why in candidates if other.pk in shown]
            patient.probable_duplicates_not_shown = bool(hidden)
            return etag_response(
                s.PatientCreatedSerializer(patient).data,
                patient,
                status_code=201,
                headers=_location("patients", patient.pk),
            )

        return idempotent(self, request, perform)

    def partial_update(self, request, pk=None):
        pk = parse_id(pk)
        refused = sorted({"confidentiality", "restriction_reason"} & set(request.data))
        if refused:
            raise exceptions.ValidationError(
                {name: [_("Not a field of an update: lowering confidentiality is a separate act of the DPO.")]
                 for name in refused}
            )
        body = s.PatientUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            # A purpose (the feed's administrative amendment) writes beside a restricted patient, it does not
            # rewrite an identity it may not read: 404 before the gate's amendment and the ETag's check.
            _known_or_missing(self, patient_id=pk, action=Action.AMEND, known_by=_IDENTITY, resource_id=pk,
                              details={"fields": sorted(body.validated_data)})
            self.gate(
                patient_id=pk,
                action=Action.AMEND,
                resource_id=pk,
                details={"fields": sorted(body.validated_data)},
            )
            patient = _get_or_404(Patient.objects.select_for_update(), pk)
            check_if_match(request, patient, required=True)
            patient_services.patient_update(patient=patient, actor=request.user, **body.validated_data)
            patient.refresh_from_db()
        return etag_response(s.PatientSerializer(patient).data, patient)

    @extend_schema(summary="Query the INSi teleservice with this identity's traits (RNIV: PROV -> RECUP, "
                           "VALI -> QUAL on exactly one result)", request=None, responses=s.InsiAnswerSerializer)
    @action(detail=True, methods=["post"])
    def insi(self, request, pk=None):
        pk = parse_id(pk)
        with transaction.atomic():
            _known_or_missing(self, patient_id=pk, action=Action.AMEND, known_by=_IDENTITY, resource_id=pk,
                              details={"insi": True})
            self.gate(patient_id=pk, action=Action.AMEND, resource_id=pk, details={"insi": True})
            patient = _get_or_404(Patient.objects.all(), pk)
            patient, query = patient_services.patient_insi_check(actor=request.user, patient=patient)
            self.written = (patient.pk, self.category, self.resource_type, patient.pk)
        patient.refresh_from_db()
        return etag_response({"outcome": query.outcome, "results": len(getattr(query, "candidates", ())),
                              "patient": s.PatientSerializer(patient).data}, patient)

    @extend_schema(summary="Merge another file of the same person into this one (identity vigilance only)",
                   request=s.MergeSerializer, responses=s.MergeResultSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        pk = parse_id(pk)
        body = s.MergeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self._identity_vigilance_only(request, pk, "merge")
        with transaction.atomic():
            merged_id = body.validated_data["merged"]
            for patient_id in (pk, merged_id):
                self.gate(patient_id=patient_id, action=Action.AMEND, resource_id=patient_id, missing="400")
            kept = _get_or_404(Patient.objects.all(), pk)
            merged = Patient.objects.get(pk=merged_id)
            access_services.merge_check(actor=request.user, kept_id=kept.pk, merged_id=merged.pk)
            record = patient_services.patient_merge(actor=request.user, kept=kept, merged=merged,
                                                    reason=body.validated_data["reason"])
            self.written = (kept.pk, self.category, "identitymerge", record.pk)
        return JsonResponse(s.MergeResultSerializer(record).data)

    def _identity_vigilance_only(self, request, pk: int | None, what: str) -> None:
        role = gate.role_of(request.user)
        principal = principal_of(request)
        if not gate.may_manage_identities(request.user, represented=bool(principal and principal.on_behalf_of)):
            event_record(action="amend", outcome="denied", actor=request.user, actor_role=str(role or ""),
                         patient_id=pk, category=self.category, resource_type="identitymerge",
                         basis="deny:identity_vigilance", reason=f"{what} needs the identity-vigilance group")
            raise exceptions.PermissionDenied(_(_IDENTITY_VIGILANCE_ONLY[what]))

    @extend_schema(summary="Undo the merge of this (merged) file, within the period allowed (identity vigilance "
                           "only)", request=s.UnmergeSerializer, responses=s.MergeResultSerializer)
    @action(detail=True, methods=["post"])
    def unmerge(self, request, pk=None):
        pk = parse_id(pk)
        body = s.UnmergeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self._identity_vigilance_only(request, pk, "unmerge")
        with transaction.atomic():
            self.gate(patient_id=pk, action=Action.AMEND, resource_id=pk)
            merged = _get_or_404(Patient.objects.all(), pk)
            record = patient_services.merge_of(merged)
            if record is None:
                raise exceptions.ValidationError({"merge": [_("This file is not merged into another one.")]})
            self.gate(patient_id=record.kept_patient_id, action=Action.AMEND, resource_id=record.kept_patient_id)
            record = patient_services.patient_unmerge(actor=request.user, merge=record,
                                                      reason=body.validated_data["reason"])
            self.written = (pk, self.category, "identitymerge", record.pk)
        return JsonResponse(s.MergeResultSerializer(record).data)

    @extend_schema(summary="Split a collision (one file holding two people): a new file for the other person with "
                           "the stays and appointments given (identity vigilance only)",
                   request=s.SplitSerializer, responses={201: s.PatientSerializer})
    @action(detail=True, methods=["post"])
    def split(self, request, pk=None):
        pk = parse_id(pk)
        body = s.SplitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self._identity_vigilance_only(request, pk, "split")
        data = body.validated_data
        with transaction.atomic():
            self.gate(patient_id=pk, action=Action.AMEND, resource_id=pk)
            self.gate(patient_id=None, action=Action.CREATE)
            source = _get_or_404(Patient.objects.all(), pk)
            other = patient_services.patient_split(
                actor=request.user, patient=source, identity=data["identity"], encounters=data.get("encounters", []),
                appointments=data.get("appointments", []), reason=data["reason"])
            self.written = (other.pk, self.category, self.resource_type, other.pk)
        return etag_response(s.PatientSerializer(other).data, other, status_code=201,
                             headers=_location("patients", other.pk))


# --- encounters -------------------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(
        summary="A patient's encounters",
        parameters=[s.PatientFilterSerializer],
        responses=s.EncounterSerializer(many=True),
    ),
    retrieve=extend_schema(summary="Read an encounter", responses=s.EncounterSerializer, parameters=[ETAG_HEADER]),
    create=extend_schema(
        summary="Admission (ADT A01/A04)",
        request=s.EncounterAdmitSerializer,
        responses={201: s.EncounterSerializer},
        parameters=[ETAG_HEADER],
    ),
    transfer=extend_schema(
        summary="Transfer to another unit (ADT A02): closes this one, opens the next",
        request=s.EncounterTransferSerializer,
        responses={201: s.EncounterSerializer},
        parameters=[IF_MATCH_OPTIONAL, ETAG_HEADER],
    ),
    discharge=extend_schema(
        summary="Discharge (ADT A03)",
        request=s.EncounterDischargeSerializer,
        responses={200: s.EncounterSerializer},
        parameters=[IF_MATCH_OPTIONAL, ETAG_HEADER],
    ),
)
class EncounterViewSet(_Base):
    """The admission / transfer / discharge feed. The care team follows automatically (access.signals)."""

    category = Category.ADMINISTRATIVE
    resource_type = "encounter"
    scope_actions = {
        "list": Action.VIEW,
        "retrieve": Action.VIEW,
        "create": Action.CREATE,
        "transfer": Action.AMEND,
        "discharge": Action.AMEND,
        "confirm": Action.AMEND,
    }
    serializer_class = s.EncounterSerializer
    queryset = Encounter.objects.none()

    def _encounters(self):
        # Unit history is health data: administrative-only principals see current stays (access.unit_history).
        return limit_unit_history(Encounter.objects.select_related("unit"), user=self.request.user,
                                  scopes=getattr(self.request.auth, "scopes", None))

    def list(self, request):
        patient_id = _patient_filter(request)
        self.gate(patient_id=patient_id, action=Action.VIEW)
        page = self.paginate_queryset(self._encounters().filter(patient_id=patient_id))
        return self.get_paginated_response(s.EncounterSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        encounter = _get_or_404(self._encounters(), pk)
        self.gate(patient_id=encounter.patient_id, action=Action.VIEW, resource_id=encounter.pk)
        return etag_response(s.EncounterSerializer(encounter).data, encounter)

    def create(self, request):
        body = s.EncounterAdmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data

        def perform():
            # A patient the principal may not know (reception's purpose without the exact lookup included)
            # answers as a free id, before anything else.
            _known_or_missing(self, patient_id=data["patient"], action=Action.CREATE, missing="400")
            self.gate(patient_id=data["patient"], action=Action.CREATE, missing="400")
            patient = Patient.objects.get(pk=data["patient"])
            kwargs = {k: data[k] for k in ("start", "kind") if k in data}
            encounter = patient_services.encounter_admit(
                patient=patient, unit=data["unit"], **kwargs, **self.provenance()
            )
            self.written = (patient.pk, self.category, self.resource_type, encounter.pk)
            return etag_response(
                s.EncounterSerializer(encounter).data,
                encounter,
                status_code=201,
                headers=_location("encounters", encounter.pk),
            )

        return idempotent(self, request, perform)

    def _locked_for_change(self, request, pk) -> Encounter:
        encounter = _get_or_404(self._encounters(), pk)
        # A stay of a patient the principal may not know answers as a free id, before any other check.
        _known_or_missing(self, patient_id=encounter.patient_id, action=Action.AMEND, resource_id=encounter.pk)
        decision = self.gate(patient_id=encounter.patient_id, action=Action.AMEND, resource_id=encounter.pk)
        encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
        check_if_match(request, encounter, required=False)
        # Allowed by a purpose only (the feed on a restricted patient): the answer keeps what it sent.
        encounter.dpi_purpose_only = gate.allowed_by_purpose_only(decision)
        return encounter

    @action(detail=True, methods=["post"])
    def transfer(self, request, pk=None):
        body = s.EncounterTransferSerializer(data=request.data)
        body.is_valid(raise_exception=True)

        def perform():
            encounter = self._locked_for_change(request, pk)
            new = patient_services.encounter_transfer(
                encounter=encounter,
                unit=body.validated_data["unit"],
                at=body.validated_data.get("at"),
                **self.provenance(),
            )
            new = self._encounters().get(pk=new.pk)
            self.written = (new.patient_id, self.category, self.resource_type, new.pk)
            return etag_response(
                s.EncounterSerializer(new).data, new, status_code=201, headers=_location("encounters", new.pk)
            )

        return idempotent(self, request, perform)

    @action(detail=True, methods=["post"])
    def confirm(self, request, pk=None):
        """A second person (a member of the unit, or the feed) confirms an admission entered by someone it
        lets in (access.policy, provenance)."""
        with transaction.atomic():
            encounter = _get_or_404(self._encounters(), pk)
            self.gate(patient_id=encounter.patient_id, action=Action.VIEW, resource_id=encounter.pk)
            access_services.care_fact_confirm(actor=request.user, fact=encounter, source=self.provenance()["source"])
            encounter = self._encounters().get(pk=encounter.pk)
        return etag_response(s.EncounterSerializer(encounter).data, encounter)

    @action(detail=True, methods=["post"])
    def discharge(self, request, pk=None):
        body = s.EncounterDischargeSerializer(data=request.data)
        body.is_valid(raise_exception=True)

        def perform():
            encounter = self._locked_for_change(request, pk)
            purpose_only = encounter.dpi_purpose_only
            encounter = patient_services.encounter_discharge(encounter=encounter, end=body.validated_data.get("end"))
            encounter = self._encounters().get(pk=encounter.pk)
            self.written = (encounter.patient_id, self.category, self.resource_type, encounter.pk)
            data = s.EncounterSerializer(encounter).data
            if purpose_only:  # the stay's unit and start are data of a patient the client may not read
                data = {k: v for k, v in data.items() if k not in ("unit", "unit_name", "start")}
            return etag_response(data, encounter)

        return idempotent(self, request, perform)


# --- observations and lab results -------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(
        summary="A patient's observations and lab results",
        parameters=[s.PatientFilterSerializer],
        responses=s.ObservationSerializer(many=True),
    ),
    retrieve=extend_schema(summary="Read an observation", responses=s.ObservationSerializer, parameters=[ETAG_HEADER]),
    create=extend_schema(
        summary="Record an observation or lab result (inbound from a laboratory system)",
        request=s.ObservationCreateSerializer,
        responses={201: s.ObservationSerializer},
        parameters=[ETAG_HEADER],
    ),
    partial_update=extend_schema(
        summary="Correct a result (the previous value is kept)",
        request=s.ObservationAmendSerializer,
        responses=s.ObservationSerializer,
        parameters=[IF_MATCH_REQUIRED, ETAG_HEADER],
    ),
)
class ObservationViewSet(_Base):
    category = Category.MEDICAL
    resource_type = "observation"
    serializer_class = s.ObservationSerializer
    queryset = Observation.objects.none()

    def _observations(self):
        return Observation.objects.select_related("author")

    def list(self, request):
        patient_id = _patient_filter(request)
        self.gate(patient_id=patient_id, action=Action.VIEW)
        page = self.paginate_queryset(self._observations().filter(patient_id=patient_id))
        return self.get_paginated_response(s.ObservationSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        obs = _get_or_404(self._observations(), pk)
        self.gate(patient_id=obs.patient_id, category=obs.category, action=Action.VIEW, resource_id=obs.pk)
        return etag_response(s.ObservationSerializer(obs).data, obs)

    def create(self, request):
        body = s.ObservationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)

        def perform():
            patient_id = data.pop("patient")
            self.gate(patient_id=patient_id, action=Action.CREATE, missing="400")
            patient = Patient.objects.get(pk=patient_id)
            encounter_id = data.pop("encounter", None)
            encounter = None
            if encounter_id is not None:
                encounter = Encounter.objects.filter(pk=encounter_id, patient_id=patient_id).first()
                if encounter is None:
                    raise exceptions.ValidationError({"encounter": [_("No such encounter for this patient.")]})
            if "category" in data:
                data["obs_category"] = data.pop("category")
            obs = clinical_services.observation_record(
                patient=patient, author=request.user, encounter=encounter, **data
            )
            obs = self._observations().get(pk=obs.pk)
            self.written = (patient.pk, obs.category, self.resource_type, obs.pk)
            return etag_response(
                s.ObservationSerializer(obs).data,
                obs,
                status_code=201,
                headers=_location("observations", obs.pk),
            )

        return idempotent(self, request, perform)

    def partial_update(self, request, pk=None):
        body = s.ObservationAmendSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        reason = changes.pop("reason", "")
        if not reason.strip():
            raise exceptions.ValidationError({"reason": [_("An amendment needs a reason.")]})
        with transaction.atomic():
            obs = _get_or_404(self._observations(), pk)
            self.gate(
                patient_id=obs.patient_id,
                category=obs.category,
                action=Action.AMEND,
                resource_id=obs.pk,
                details={"fields": sorted(changes)},
            )
            obs = Observation.objects.select_for_update().get(pk=obs.pk)
            check_if_match(request, obs, required=True)
            clinical_services.item_amend(item=obs, author=request.user, reason=reason, **changes)
            obs = self._observations().get(pk=obs.pk)
        return etag_response(s.ObservationSerializer(obs).data, obs)


# --- documents --------------------------------------------------------------------------------------------
# Accepted media types and how their first bytes look (the declared type must match the content).
MEDIA_TYPES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/xml": (b"<", b"\xef\xbb\xbf<"),  # CDA R2 documents
    "text/plain": (),
}


def _check_upload(upload) -> tuple[bytes, str]:
    from django.conf import settings

    if upload.size > settings.DPI_API_DOCUMENT_MAX_BYTES:
        raise exceptions.ValidationError(
            {"file": [_("Larger than %(max)d bytes.") % {"max": settings.DPI_API_DOCUMENT_MAX_BYTES}]})
    media_type = (upload.content_type or "").split(";")[0].strip().lower()
    if media_type == "text/xml":
        media_type = "application/xml"
    if media_type not in MEDIA_TYPES:
        raise exceptions.ValidationError(
            {"file": [_("Unsupported type %(type)s: %(accepted)s.")
                      % {"type": repr(media_type), "accepted": ", ".join(MEDIA_TYPES)}]}
        )
    content = upload.read()
    magic = MEDIA_TYPES[media_type]
    if magic and not content.lstrip(b" \t\r\n").startswith(magic):
        raise exceptions.ValidationError({"file": [_("The content is not %(type)s.") % {"type": media_type}]})
    if media_type == "text/plain":
        try:
            content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ValidationError({"file": [_("Plain text must be UTF-8.")]}) from exc
    return content, media_type


@extend_schema_view(
    list=extend_schema(
        summary="A patient's documents (metadata)",
        parameters=[s.PatientFilterSerializer],
        responses=s.DocumentSerializer(many=True),
    ),
    retrieve=extend_schema(summary="A document's metadata", responses=s.DocumentSerializer, parameters=[ETAG_HEADER]),
    create=extend_schema(
        summary="Upload a document (multipart/form-data)",
        request=s.DocumentUploadSerializer,
        responses={201: s.DocumentSerializer},
        parameters=[ETAG_HEADER],
    ),
    content=extend_schema(
        summary="Download a document's content",
        responses={(200, mt): OpenApiResponse(OpenApiTypes.BINARY) for mt in MEDIA_TYPES},
    ),
)
class DocumentViewSet(_Base):
    category = Category.MEDICAL
    resource_type = "document"
    scope_actions = {
        "list": Action.VIEW,
        "retrieve": Action.VIEW,
        "create": Action.CREATE,
        "content": Action.VIEW,
    }
    serializer_class = s.DocumentSerializer
    queryset = Document.objects.none()
    parser_classes = [MultiPartParser]

    def _documents(self):
        return Document.objects.select_related("author").defer("content")

    def list(self, request):
        patient_id = _patient_filter(request)
        self.gate(patient_id=patient_id, action=Action.VIEW)
        page = self.paginate_queryset(self._documents().filter(patient_id=patient_id))
        return self.get_paginated_response(s.DocumentSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        doc = _get_or_404(self._documents(), pk)
        self.gate(patient_id=doc.patient_id, category=doc.category, action=Action.VIEW, resource_id=doc.pk)
        return etag_response(s.DocumentSerializer(doc).data, doc)

    def create(self, request):
        body = s.DocumentUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        content, media_type = _check_upload(data["file"])

        def perform():
            self.gate(patient_id=data["patient"], action=Action.CREATE, missing="400")
            patient = Patient.objects.get(pk=data["patient"])
            encounter = None
            if data.get("encounter") is not None:
                encounter = Encounter.objects.filter(pk=data["encounter"], patient_id=patient.pk).first()
                if encounter is None:
                    raise exceptions.ValidationError({"encounter": [_("No such encounter for this patient.")]})
            doc = clinical_services.document_add(
                patient=patient,
                author=request.user,
                title=data["title"],
                content=content,
                media_type=media_type,
                encounter=encounter,
                type_code=data.get("type_code", ""),
            )
            doc = self._documents().get(pk=doc.pk)
            self.written = (patient.pk, doc.category, self.resource_type, doc.pk)
            return etag_response(
                s.DocumentSerializer(doc).data, doc, status_code=201, headers=_location("documents", doc.pk)
            )

        return idempotent(self, request, perform)

    @action(detail=True, methods=["get"])
    def content(self, request, pk=None):
        meta = _get_or_404(self._documents(), pk)
        self.gate(
            patient_id=meta.patient_id,
            category=meta.category,
            action=Action.VIEW,
            resource_id=meta.pk,
            details={"download": True},
        )
        doc = Document.objects.get(pk=meta.pk)
        response = HttpResponse(doc.content, content_type=doc.media_type)
        extension = {
            "application/pdf": "pdf",
            "image/png": "png",
            "image/jpeg": "jpg",
            "application/xml": "xml",
            "text/plain": "txt",
        }.get(doc.media_type, "bin")
        response["Content-Disposition"] = f'attachment; filename="document-{doc.pk}.{extension}"'
        response["ETag"] = f'"document-{doc.pk}-v{doc.version}"'
        return response


# --- care-team memberships --------------------------------------------------------------------------------
# Who may change a patient's care team through the API. Adding someone grants them the medical record, so
# the gate asks for medical "create" on that patient (care team member or integration feed); among the
# roles the matrix allows, only prescribers and the integration feed organise the team (not nurses or
# secretaries). The DIM's matrix has no medical "create": it does not manage care teams.
TEAM_MANAGERS = frozenset({Role.PHYSICIAN, Role.MIDWIFE, Role.INTEGRATION})


@extend_schema_view(
    list=extend_schema(
        summary="A patient's explicit care-team memberships",
        parameters=[s.PatientFilterSerializer],
        responses=s.MembershipSerializer(many=True),
    ),
    retrieve=extend_schema(summary="Read a membership", responses=s.MembershipSerializer),
    create=extend_schema(
        summary="Add a professional to a patient's care team (referral, consultation)",
        request=s.MembershipCreateSerializer,
        responses={201: s.MembershipSerializer},
    ),
    end=extend_schema(
        summary="End a membership now (or at a given time)",
        request=s.MembershipEndSerializer,
        responses={200: s.MembershipSerializer},
    ),
)
class CareTeamMembershipViewSet(_Base):
    category = Category.MEDICAL
    resource_type = "careteammembership"
    scope_actions = {
        "list": Action.VIEW,
        "retrieve": Action.VIEW,
        "create": Action.CREATE,
        "end": Action.AMEND,
    }
    serializer_class = s.MembershipSerializer
    queryset = CareTeamMembership.objects.none()

    def _memberships(self):
        return CareTeamMembership.objects.select_related("user", "granted_by")

    def _require_team_manager(self, patient_id: int | None) -> None:
        user = self.request.user
        role = gate.role_of(user)
        if role in TEAM_MANAGERS:
            return
        event_record(
            actor=user,
            actor_role=str(role or ""),
            actor_unit=gate.unit_of(user),
            patient_id=patient_id,
            category=Category.MEDICAL,
            action=Action.CREATE,
            outcome="denied",
            basis="deny:role",
            reason="this role does not manage care teams",
            resource_type=self.resource_type,
            details=api_details(self.request),
        )
        raise exceptions.PermissionDenied(_("this role does not manage care teams"))

    def list(self, request):
        patient_id = _patient_filter(request)
        self.gate(patient_id=patient_id, action=Action.VIEW)
        page = self.paginate_queryset(self._memberships().filter(patient_id=patient_id))
        return self.get_paginated_response(s.MembershipSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        membership = _get_or_404(self._memberships(), pk)
        self.gate(patient_id=membership.patient_id, action=Action.VIEW, resource_id=membership.pk)
        return etag_response(s.MembershipSerializer(membership).data, membership)

    def create(self, request):
        body = s.MembershipCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data

        def perform():
            self._require_team_manager(data["patient"])
            # Before anything that depends on the patient: a restricted one the principal may not know answers
            # as a free id does (membership_add's own gate decides the rest).
            _known_or_missing(self, patient_id=data["patient"], action=Action.CREATE, missing="400")
            patient = Patient.objects.get(pk=data["patient"])
            member = User.objects.filter(username=data["user"], is_active=True).first()
            if member is None or gate.role_of(member) not in CARE_STAFF_ROLES:
                raise exceptions.ValidationError({"user": [_("No active care professional with this username.")]})
            membership = access_services.membership_add(
                actor=request.user,
                patient=patient,
                user=member,
                end=data["end"],
                reason=data["reason"],
                start=data.get("start"),
                source=self.provenance()["source"],
            )
            membership = self._memberships().get(pk=membership.pk)
            self.written = (patient.pk, self.category, self.resource_type, membership.pk)
            return etag_response(
                s.MembershipSerializer(membership).data,
                membership,
                status_code=201,
                headers=_location("care-team-memberships", membership.pk),
            )

        return idempotent(self, request, perform)

    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        body = s.MembershipEndSerializer(data=request.data)
        body.is_valid(raise_exception=True)

        def perform():
            membership = _get_or_404(self._memberships(), pk)
            # A patient the principal may not know answers as a free id, before the role check that says 403.
            _known_or_missing(self, patient_id=membership.patient_id, action=Action.AMEND, known_by=_IDENTITY,
                              resource_id=membership.pk)
            self._require_team_manager(membership.patient_id)
            membership = access_services.membership_end(
                actor=request.user, membership=membership, at=body.validated_data.get("at")
            )
            membership = self._memberships().get(pk=membership.pk)
            self.written = (membership.patient_id, self.category, self.resource_type, membership.pk)
            return etag_response(s.MembershipSerializer(membership).data, membership)

        return idempotent(self, request, perform)


# --- audit events (DPO) -----------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(
        summary="Access events (DPO only; reading them is itself recorded)",
        parameters=[s.AccessEventFilterSerializer],
        responses=s.AccessEventSerializer(many=True),
    ),
)
class AccessEventViewSet(_Base):
    """The access trace, read-only, for the DPO. Alerts stay on the detection dashboard (/dpo/alerts/)."""

    resource_type = "accessevent"
    serializer_class = s.AccessEventSerializer
    queryset = AccessEvent.objects.none()

    def required_scope(self, request) -> str | None:
        return AUDIT_VIEW

    def list(self, request):
        f = s.AccessEventFilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        filters = f.validated_data
        require_dpo(request, filters)
        page = self.paginate_queryset(audit_events_filtered(filters))
        # Rows the chain quarantined or the last verify_audit named are marked not genuine (as in the report).
        flags = audit_selectors.integrity_flags(list(page))
        return self.get_paginated_response(
            s.AccessEventSerializer(page, many=True, context={"integrity_flags": flags}).data
        )


def require_dpo(request, filters: dict) -> None:
    """Only the DPO reads the trace; every reading (or refusal) is itself an access event."""
    user = request.user
    role = gate.role_of(user)
    allowed = role == Role.DPO
    shown = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items()}
    event_record(
        actor=user,
        actor_role=str(role or ""),
        actor_unit=gate.unit_of(user),
        patient_id=filters.get("patient"),
        action="view",
        outcome="allowed" if allowed else "denied",
        basis="role" if allowed else "deny:role",
        reason="" if allowed else "only the DPO reads the trace",
        resource_type="accessevent",
        details={"filters": shown, **api_details(request)},
    )
    if not allowed:
        raise exceptions.PermissionDenied(_("only the DPO reads the access trace"))


def audit_events_filtered(filters: dict):
    events = AccessEvent.objects.all()
    if filters.get("patient"):
        events = events.filter(patient_id=filters["patient"])
    if filters.get("actor"):
        events = events.filter(actor_username=filters["actor"])
    if filters.get("action"):
        events = events.filter(action=filters["action"])
    if filters.get("outcome"):
        events = events.filter(outcome=filters["outcome"])
    if filters.get("since"):
        events = events.filter(occurred_at__gte=filters["since"])
    if filters.get("until"):
        events = events.filter(occurred_at__lt=filters["until"])
    return events
