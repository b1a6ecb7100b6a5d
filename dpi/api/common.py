"""What every /api/ view shares: authentication, scopes, throttling, errors, pagination, ETags, the gate.

Views are thin: they validate input with a serializer, ask the gate, call a service, and serialize.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from access import gate
from access.policy import Action, Category
from audit.context import asked_resource
from audit.services import event_record
from dpi.api.authentication import (
    ON_BEHALF_HEADER,
    ApiTokenAuthentication,
    VerifiedSessionAuthentication,
    api_details,
)
from dpi.api.permissions import HasScope
from dpi.api.scopes import scope
from dpi.api.throttling import ApiRateThrottle
from dpi.converters import MAX_ID
from dpi.middleware import in_callers_language

IDEMPOTENCY_HEADER = "Idempotency-Key"


# --- errors -----------------------------------------------------------------------------------------------
class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = gettext_lazy(
        "The resource changed since you read it (If-Match does not match its ETag): read it again.")
    default_code = "precondition_failed"


class PreconditionRequired(exceptions.APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = gettext_lazy("Send If-Match with the ETag you read, so that no change is lost.")
    default_code = "precondition_required"


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = gettext_lazy("This Idempotency-Key was already used for a different request.")
    default_code = "idempotency_key_reused"


def django_validation_detail(exc: DjangoValidationError) -> dict[str, Any]:
    if hasattr(exc, "error_dict"):
        return {("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()}
    return {"non_field_errors": exc.messages}


def api_exception_handler(exc, context):
    """DRF's handler, plus: a model/service ValidationError is a 400 naming the fields; the gate's
    refusal is a 403 carrying its reason."""
    if isinstance(exc, exceptions.NotAuthenticated):
        # An unauthenticated call is a refusal like any other (a bad token is recorded by its authentication).
        request = context.get("request")
        if request is not None:
            from access.decorators import refusal_record

            asked = asked_resource(request)  # the file sought, from the URL (the view decided nothing yet)
            refusal_record(request, basis="deny:anonymous", reason="authentication required",
                           resource_type=getattr(context.get("view"), "resource_type", "") or asked["resource_type"],
                           resource_id=asked["resource_id"])  # refusal_record adds the patient the URL names
    request, view = context.get("request"), context.get("view")
    if isinstance(exc, (exceptions.NotFound, Http404)) and request is not None and context.get("kwargs", {}).get("pk"):
        # A by-id read that finds nothing it may show is a refusal too, naming the resource asked for.
        from access.decorators import refusal_record

        refusal_record(request, basis="deny:not_found", reason="no such resource",
                       resource_type=getattr(view, "resource_type", "") or "api",
                       resource_id=context["kwargs"]["pk"])
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(django_validation_detail(exc))
    elif isinstance(exc, gate.AccessDenied):
        exc = exceptions.PermissionDenied(gate.reason_words(exc.decision))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    return drf_exception_handler(exc, context)


class ApiJSONParser(JSONParser):
    """DRF's JSON parser, its refusal in the caller's language: DRF quotes Python's English error instead."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except exceptions.ParseError as exc:
            cause = exc.__context__
            if isinstance(cause, json.JSONDecodeError):
                raise exceptions.ParseError(
                    _("Malformed JSON at line %(line)d, column %(column)d.") % {"line": cause.lineno,
                                                                               "column": cause.colno}
                ) from cause
            raise exceptions.ParseError(_("Malformed JSON.")) from cause


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class FieldErrorsSerializer(serializers.Serializer):
    """``{"field": ["message", ...], "non_field_errors": [...]}``."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


# --- pagination -------------------------------------------------------------------------------------------
class ApiCursorPagination(CursorPagination):
    """Opaque cursors: stable under concurrent inserts, no COUNT(*), no deep OFFSET."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        """``page_size`` from 1 to ``max_page_size``; anything else is a 400 naming the field (DRF would
        silently fall back to the default, and the caller would not know its parameter was ignored)."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except (TypeError, ValueError):
            size = 0
        if not 1 <= size <= self.max_page_size:
            message = _("An integer from 1 to %(max)d is required.") % {"max": self.max_page_size}
            raise exceptions.ValidationError({self.page_size_query_param: [message]})
        return size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({"cursor": [self.invalid_cursor_message]}) from exc


def parse_id(value: Any) -> int:
    """A path id as a positive bigint, else 404 (never a database error)."""
    try:
        number = int(str(value))
    except ValueError as exc:
        raise exceptions.NotFound() from exc
    if not 1 <= number <= MAX_ID:
        raise exceptions.NotFound()
    return number


# --- ETags ------------------------------------------------------------------------------------------------
def etag_of(obj: Any) -> str:
    """A strong ETag that changes with every change of the resource."""
    version = getattr(obj, "version", None)
    if version is not None:
        return f'"{obj._meta.model_name}-{obj.pk}-v{version}"'
    updated = getattr(obj, "updated_at", None)
    if updated is not None:
        return f'"{obj._meta.model_name}-{obj.pk}-{int(updated.timestamp() * 1_000_000)}"'
    state = "|".join(str(getattr(obj, f.attname)) for f in obj._meta.concrete_fields)
    return f'"{obj._meta.model_name}-{obj.pk}-{hashlib.sha256(state.encode()).hexdigest()[:16]}"'


def check_if_match(request, obj: Any, *, required: bool) -> None:
    """412 if If-Match names another version (call it after locking the row); 428 if required and absent."""
    header = request.headers.get("If-Match", "").strip()
    if not header:
        if required:
            raise PreconditionRequired()
        return
    if header == "*":
        # "*" only says the resource exists: it would skip the lost-update check the ETag is for.
        if required:
            raise PreconditionRequired(
                _("If-Match: * is not accepted here: send the ETag you read, so that no change is lost.")
            )
        return
    # Strong comparison (RFC 9110 13.1.1): weak tags never match.
    wanted = {t.strip() for t in header.split(",")}
    if etag_of(obj) not in wanted:
        raise PreconditionFailed()


# --- OpenAPI ----------------------------------------------------------------------------------------------
class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "dpi.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "dpi_<prefix>_<secret>",
            "description": "API client token; scopes '<category>:<action>' (see docs/api.md).",
        }


class VerifiedSessionScheme(OpenApiAuthenticationExtension):
    target_class = "dpi.api.authentication.VerifiedSessionAuthentication"
    name = "verifiedSession"

    def get_security_definition(self, auto_schema):
        from django.conf import settings

        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "Signed-in session with a verified second factor (CSRF token on writes).",
        }


ON_BEHALF_PARAMETER = OpenApiParameter(
    ON_BEHALF_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Username of the staff member the client acts for (clients allowed to); their rights apply.",
)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Unique key of this write: a retry with the same key and body returns the first answer "
    "without writing again; the same key with another body gets 422.",
)
IF_MATCH_REQUIRED = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="The ETag you read (412 if the resource changed since).",
)
IF_MATCH_OPTIONAL = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="The ETag you read (412 if the resource changed since).",
)
ETAG_HEADER = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[200, 201],
    description="Version of the resource, for If-Match.",
)


class ApiAutoSchema(AutoSchema):
    """Adds the answers every operation may give (401, 403, 429; 400 and 404 where they apply)."""

    def get_override_parameters(self):
        params = list(super().get_override_parameters())
        params.append(ON_BEHALF_PARAMETER)
        if self.method == "POST":
            params.append(IDEMPOTENCY_PARAMETER)
        return params

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        # 404: an unknown id in the path, or an unknown patient named by a filter or a body.
        codes = {"400": FieldErrorsSerializer, "401": ErrorSerializer, "403": ErrorSerializer,
                 "404": ErrorSerializer, "429": ErrorSerializer}
        if self.method == "POST":
            codes["422"] = ErrorSerializer
        if_match = [p for p in self.get_override_parameters() if getattr(p, "name", "") == "If-Match"]
        if if_match:
            codes["412"] = ErrorSerializer
            if any(p.required for p in if_match):
                codes["428"] = ErrorSerializer
        for code, serializer in codes.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(serializer, code, ["application/json"], direction)
        return responses


# --- the base view ----------------------------------------------------------------------------------------
class ApiView:
    """Mixin for /api/ viewsets: every request authenticated, scoped, throttled and gated."""

    authentication_classes = [ApiTokenAuthentication, VerifiedSessionAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ApiRateThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = [ApiJSONParser]
    pagination_class = ApiCursorPagination
    schema = ApiAutoSchema()

    category: Category = Category.ADMINISTRATIVE
    resource_type: str = ""
    # viewset action -> gate action (and so the scope "<category>:<action>" a token needs)
    scope_actions: dict[str, str] = {
        "list": Action.VIEW,
        "retrieve": Action.VIEW,
        "create": Action.CREATE,
        "partial_update": Action.AMEND,
    }

    @property
    def allowed_methods(self) -> list[str]:
        """The methods this view implements (the ``Allow`` header); OPTIONS only with a metadata class."""
        methods = super().allowed_methods  # type: ignore[misc]  # a mixin of DRF's APIView
        if getattr(self, "metadata_class", None) is None:
            methods = [m for m in methods if m != "OPTIONS"]
        return methods

    def check_permissions(self, request) -> None:
        # A method this view does not implement is a 405 naming the ones it does, before the scope check: it
        # is no access decision on patient data, so it leaves no refused-access event (which detection reads).
        allowed = self.allowed_methods
        if request.method.upper() not in allowed:
            method = request.method[:20]
            raise exceptions.MethodNotAllowed(
                method,
                detail=in_callers_language(request, gettext_noop("Method %(method)s is not supported here (allowed: "
                                                                 "%(allowed)s)."))
                % {"method": method, "allowed": ", ".join(allowed)},
            )
        super().check_permissions(request)  # type: ignore[misc]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]  # a mixin of DRF's APIView
        if "pk" in kwargs:
            self.refuse_by_matrix_first(kwargs["pk"])

    def matrix_action(self) -> str | None:
        """The gate action of this request (None: the view decides alone)."""
        return self.scope_actions.get(getattr(self, "action", None) or "")

    def refuse_by_matrix_first(self, pk: Any) -> None:
        """A role the matrix refuses this action on this category is refused before the id is looked up: the
        same 403 for any id, so that the answer tells nothing of what exists (a lookup first answered 403 for
        an object of a patient the user may not know and 404 for a free id). Recorded naming the resource."""
        action = self.matrix_action()
        if action is None or self.category is None:
            return
        if gate.refused_by_matrix(self.request.user, category=self.category, action=action):
            # The matrix refuses whatever the patient: asking about the object's patient changes nothing in the
            # answer, and lets the event name the patient it belongs to (someone probing that patient's ids).
            self.gate(patient_id=self._owner_of(pk), action=action, resource_id=str(pk)[:64])

    def _owner_of(self, pk: Any) -> int | None:
        """The patient of the object ``pk`` names in this view's model, or None (no such object)."""
        from patients.models import Patient

        queryset = getattr(self, "queryset", None)
        model = getattr(queryset() if callable(queryset) else queryset, "model", None)
        try:
            number = parse_id(pk)
        except exceptions.NotFound:
            return None
        if model is Patient:
            return number if Patient.objects.filter(pk=number).exists() else None
        if model is None or not any(f.attname == "patient_id" for f in model._meta.concrete_fields):
            return None
        return model._base_manager.filter(pk=number).values_list("patient_id", flat=True).first()

    def required_scope(self, request) -> str | None:
        action = self.scope_actions.get(getattr(self, "action", None) or "")
        if action is None:
            # Fail closed: an action without a declared scope is refused to tokens.
            return scope(self.category, "undeclared")
        return scope(self.category, action)

    def get_exception_handler(self):
        return api_exception_handler

    # -- the gate --
    def gate(
        self,
        *,
        patient_id: int | None,
        action: str,
        category: Category | str | None = None,
        resource_id: Any = "",
        missing: str = "404",
        details: dict[str, Any] | None = None,
    ):
        """Ask the gate (recorded with the client and represented user). A patient that does not exist is
        a 404 (or a 400 on ``patient`` for writes naming it); any other refusal is a 403."""
        decision = gate.authorize(
            self.request.user,
            patient_id=patient_id,
            category=category or self.category,
            action=action,
            resource_type=self.resource_type,
            resource_id=resource_id,
            details={**api_details(self.request), **(details or {})},
        )
        if decision.allowed:
            return decision
        if gate.is_hidden(decision):
            if missing == "400":
                raise exceptions.ValidationError({"patient": [_("Unknown patient.")]})
            raise exceptions.NotFound()
        raise gate.AccessDenied(decision)

    def gate_read(self, *, patient_id: int, reader: Any, action: str = Action.VIEW) -> Any | None:
        """``gate`` for the by-id read of a patient's own row: the row (or None) read by ``reader`` in the same
        statement as the access event (``gate.authorize_read``); refusals as ``gate``."""
        decision, row = gate.authorize_read(
            self.request.user,
            reader=reader,
            patient_id=patient_id,
            category=self.category,
            action=action,
            resource_type=self.resource_type,
            resource_id=patient_id,
            details=api_details(self.request),
        )
        if decision.allowed:
            return row
        if gate.is_hidden(decision):
            raise exceptions.NotFound()
        raise gate.AccessDenied(decision)

    def provenance(self) -> dict[str, Any]:
        """Who creates a care fact through this request, and how: the feed (a token of an integration
        account) or a staff member."""
        from dpi.api.authentication import principal_of

        user = self.request.user
        via_feed = principal_of(self.request) is not None and gate.is_token_only(user)
        return {"actor": user, "source": "feed" if via_feed else "staff"}

    def search_patients(self, queryset, *, query: str, exact: bool = False):
        """``gate.visible_patients`` with the search event carrying the client details (the gate's own
        recording has no room for them), and a 403 rather than an empty page when the search is refused."""
        user = self.request.user
        decision = gate.decide(user, patient_id=None, category=Category.ADMINISTRATIVE, action=Action.SEARCH)
        event_record(
            actor=user,
            actor_role=decision.role,
            actor_unit=gate.unit_of(user),
            category=Category.ADMINISTRATIVE,
            action=Action.SEARCH,
            outcome="allowed" if decision.allowed else "denied",
            basis=decision.basis,
            reason=decision.reason,
            resource_type="patient",
            details={"query_length": len(query), **api_details(self.request)},
        )
        if not decision.allowed:
            raise gate.AccessDenied(decision)
        return gate.visible_patients(user, queryset, query=query, record=False, exact_identifier=exact)


def etag_response(data: Any, obj: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(data, status=status_code, headers={"ETag": etag_of(obj), **(headers or {})})
