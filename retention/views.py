"""Minimal JSON endpoints for the archive: find, restore requests (four eyes), legal holds, disposal
decisions, and the status the DPO dashboard shows. Thin: each calls one service or selector.

Bodies are JSON or form-encoded; session authentication with CSRF protection (the web UI posts with its token).
Identity values (IPP, INS) travel in POST bodies, never in URLs (which end up in server logs).
"""

from __future__ import annotations

import json
from datetime import date
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from access.decorators import refusal_record, roles_required
from access.gate import MAX_ID
from access.policy import Role
from audit.context import denied_count
from retention import selectors, services
from retention.models import RestoreRequest

STATUS_ROLES = frozenset({Role.DIM, Role.DPO})


def _body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise ValidationError({"__all__": [_("The body is not valid JSON.")]}) from exc
        return data if isinstance(data, dict) else {}
    return request.POST.dict()


def _int(data: dict[str, Any], name: str) -> int:
    try:
        value = int(data.get(name))
    except (TypeError, ValueError) as exc:
        raise ValidationError({name: [_("A whole number is required.")]}) from exc
    if not 1 <= value <= MAX_ID:  # a PostgreSQL bigint: a larger id would fail the query and its event
        raise ValidationError({name: [_("Out of range: an id is a whole number from 1 to 9223372036854775807.")]})
    return value


def json_endpoint(view):
    """Signed-in users only; ValidationError -> 400 naming the field, PermissionDenied -> 403."""
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "authentication required"}, status=401)
        recorded = denied_count()
        try:
            return view(request, *args, **kwargs)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            if denied_count() == recorded:  # refused before any decision: recorded like any refusal
                refusal_record(request, basis="deny:invalid_request", reason=", ".join(sorted(errors))[:300],
                               resource_type="retention", resource_id=kwargs.get("pk", ""))
            return JsonResponse({"errors": errors}, status=400)
        except PermissionDenied as exc:
            return JsonResponse({"error": str(exc) or "forbidden"}, status=403)
        except RestoreRequest.DoesNotExist:
            return JsonResponse({"error": "not found"}, status=404)
    return wrapper


def _request_json(req: RestoreRequest) -> dict[str, Any]:
    return {"id": req.pk, "patient_id": req.patient_id, "state": req.state, "requested_by": req.requested_by_id,
            "decided_by": req.decided_by_id, "restored_at": req.restored_at, "last_error": req.last_error}


@require_POST
@json_endpoint
def archive_find(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    found = services.archive_find(user=request.user, ipp=str(data.get("ipp", "")), ins=str(data.get("ins", "")))
    return JsonResponse({"archives": [
        {"patient_id": a.patient_id, "archived_at": a.archived_at, "kept_through": a.kept_through,
         "legal_hold": a.legal_hold} for a in found]})


@require_POST
@json_endpoint
def restore_request_create(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    req = services.restore_request_create(user=request.user, patient_id=_int(data, "patient_id"),
                                          reason=str(data.get("reason", "")))
    return JsonResponse(_request_json(req), status=201)


@require_POST
@json_endpoint
def restore_request_approve(request: HttpRequest, pk: int) -> JsonResponse:
    req = services.restore_request_approve(user=request.user, request_id=pk,
                                           comment=str(_body(request).get("comment", "")))
    return JsonResponse(_request_json(req))


@require_POST
@json_endpoint
def restore_request_reject(request: HttpRequest, pk: int) -> JsonResponse:
    req = services.restore_request_reject(user=request.user, request_id=pk,
                                          comment=str(_body(request).get("comment", "")))
    return JsonResponse(_request_json(req))


@require_POST
@json_endpoint
def legal_hold_place(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    hold = services.legal_hold_place(user=request.user, patient_id=_int(data, "patient_id"),
                                     reason=str(data.get("reason", "")))
    return JsonResponse({"id": hold.pk, "patient_id": hold.patient_id}, status=201)


@require_POST
@json_endpoint
def legal_hold_lift(request: HttpRequest, pk: int) -> JsonResponse:
    from retention.models import LegalHold

    try:
        hold = services.legal_hold_lift(user=request.user, hold_id=pk)
    except LegalHold.DoesNotExist:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"id": hold.pk, "lifted_at": hold.lifted_at})


@require_POST
@json_endpoint
def disposal_decision_record(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    as_of = None
    if data.get("as_of"):
        try:
            as_of = date.fromisoformat(str(data["as_of"]))
        except ValueError as exc:
            raise ValidationError({"as_of": [_("A date (YYYY-MM-DD) is required.")]}) from exc
    decision = services.disposal_decision_record(user=request.user, action=str(data.get("action", "")),
                                                 reference=str(data.get("reference", "")), as_of=as_of)
    return JsonResponse({"id": decision.pk, "action": decision.action, "archives": decision.archives_count},
                        status=201)


@require_GET
@json_endpoint
@roles_required(*STATUS_ROLES)
def status(request: HttpRequest) -> JsonResponse:
    data = selectors.retention_overview()
    data["restore_requests"] = selectors.restore_requests_open()
    return JsonResponse(data)
