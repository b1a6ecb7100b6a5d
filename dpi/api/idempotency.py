"""Idempotency keys: a retried POST gets the first answer and writes nothing more.

The key is claimed by inserting its row in the same transaction as the write. PostgreSQL makes a second
request with the same key wait on the unique index until the first commits (then it replays the stored
answer) or rolls back (then it proceeds as the first). A refused or invalid request rolls back, so its key
stays free for a corrected retry. The same key with another body is a client bug: 422.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from access.policy import Action
from dpi.api.authentication import ON_BEHALF_HEADER, api_details, principal_of
from dpi.api.common import IDEMPOTENCY_HEADER, IdempotencyConflict
from dpi.api.models import IdempotencyRecord

_KEPT_HEADERS = ("ETag", "Location")


def _canonical(value: Any) -> Any:
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file": value.name, "sha256": digest.hexdigest(), "content_type": value.content_type}
    if hasattr(value, "lists"):  # QueryDict (form or multipart)
        return {k: [_canonical(v) for v in vs] for k, vs in value.lists()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def request_fingerprint(request) -> str:
    payload = {
        "method": request.method,
        "path": request.path,
        "on_behalf_of": request.headers.get(ON_BEHALF_HEADER, ""),
        "data": _canonical(request.data),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, cls=JSONEncoder).encode()).hexdigest()


def _key_of(request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 200 or not key.isascii() or not key.isprintable():
        raise exceptions.ValidationError({IDEMPOTENCY_HEADER: [_("1 to 200 printable ASCII characters.")]})
    return key


def idempotent(view, request, perform: Callable[[], Response]) -> Response:
    """Run ``perform`` (gate + service + serialization) in one transaction, at most once per key.

    ``perform`` sets ``view.written = (patient_id, category, resource_type, resource_id)`` so that a replay
    is itself checked and recorded by the gate as a read of what it shows.
    """
    key = _key_of(request)
    if key is None:
        with transaction.atomic():
            return perform()
    principal = principal_of(request)
    owner = principal.service_user if principal else request.user
    fingerprint = request_fingerprint(request)
    with transaction.atomic():
        record = _claim(owner, key, request, fingerprint)
        if record.status_code:
            return _replay(view, request, record, fingerprint)
        response = perform()
        patient_id, category, resource_type, resource_id = getattr(view, "written", (None, "", "", ""))
        record.status_code = response.status_code
        record.response_body = json.dumps(response.data, cls=JSONEncoder)
        record.response_headers = {h: response[h] for h in _KEPT_HEADERS if response.has_header(h)}
        record.patient_id, record.category = patient_id, str(category or "")
        record.resource_type, record.resource_id = resource_type, str(resource_id)
        record.save(
            update_fields=[
                "status_code",
                "response_body",
                "response_headers",
                "patient_id",
                "category",
                "resource_type",
                "resource_id",
            ]
        )
        return response


def _claim(owner, key: str, request, fingerprint: str) -> IdempotencyRecord:
    cutoff = timezone.now() - timedelta(hours=settings.DPI_API_IDEMPOTENCY_HOURS)
    IdempotencyRecord.objects.filter(owner=owner, key=key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                owner=owner, key=key, method=request.method, path=request.path[:300], request_hash=fingerprint
            )
    except IntegrityError:
        # The first request committed its answer (we waited on the unique index for it).
        return IdempotencyRecord.objects.get(owner=owner, key=key)


def _replay(view, request, record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        raise IdempotencyConflict()
    if record.patient_id is not None:
        view.gate(
            patient_id=record.patient_id,
            category=record.category or None,
            action=Action.VIEW,
            resource_id=record.resource_id,
            details={"idempotent_replay": True, **api_details(request)},
        )
    return Response(
        json.loads(record.response_body),
        status=record.status_code,
        headers={**record.response_headers, "Idempotent-Replayed": "true"},
    )
