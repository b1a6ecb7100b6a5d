"""JSON views of the compliance area. Thin: a role check, then a selector or a service."""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from access.decorators import refusal_record, roles_required
from access.policy import Role
from dpi.compliance import selectors, services


def _json(data) -> JsonResponse:
    return JsonResponse(data, encoder=DjangoJSONEncoder, json_dumps_params={"ensure_ascii": False})


@require_http_methods(["GET", "POST"])
def maintenance_log(request: HttpRequest) -> JsonResponse:
    """GET: the logbook, for the DPO only. POST: a maintenance provider notes an intervention (inside a window)."""
    if request.method == "POST":
        return _maintenance_note(request)
    return _maintenance_logbook(request)


@roles_required(Role.DPO)
def _maintenance_logbook(request: HttpRequest) -> JsonResponse:
    return _json({"entries": selectors.maintenance_logbook(), "windows": selectors.maintenance_windows()})


def _maintenance_note(request: HttpRequest) -> JsonResponse:
    user = request.user
    if not user.is_authenticated or not services.is_maintenance_account(user):
        refusal_record(request, basis="deny:role", reason="only a maintenance provider notes interventions")
        raise PermissionDenied("only a maintenance provider notes interventions")
    window = services.active_window(user)
    if window is None:  # the middleware already ends such sessions; kept for direct calls
        raise PermissionDenied("outside an approved maintenance window")
    try:
        what = str(json.loads(request.body or b"{}").get("what", "")).strip()
    except ValueError:
        what = ""
    if not what:
        return JsonResponse({"errors": {"what": [_("Say what was done.")]}}, status=400)
    entry = services.maintenance_log_record(user=user, window=window, what=what, details={"kind": "note"})
    return JsonResponse({"id": entry.pk}, status=201)


@require_GET
@roles_required(Role.MAINTENANCE, Role.IT_ADMIN)
def maintenance_status(request: HttpRequest) -> JsonResponse:
    """What a maintenance provider needs to check the installation, and nothing about patients."""
    return _json(selectors_status())


def selectors_status() -> dict:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from dpi import crypto
    from dpi.compliance import backups

    with connection.cursor() as cur:
        cur.execute("SELECT version(), pg_database_size(current_database())")
        version, size = cur.fetchone()
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    latest = []
    for path in backups.backups_list()[:5]:
        try:
            m = backups.manifest_read(path)
        except backups.BackupRejected:
            latest.append({"file": path.name, "manifest": "invalid"})
            continue
        latest.append({"file": path.name, "created_at": m["created_at"], "bytes": m["ciphertext_size"],
                       "backup_key_version": m["key_version"]})
    ring = crypto.keyring()
    return {"database": {"version": version, "bytes": size}, "pending_migrations": len(pending),
            "backups": latest, "keyring": {p: sorted(ring[p].keys) for p in crypto.PURPOSES}}


@require_GET
@roles_required(Role.DPO, Role.DIM)
def rights_register(request: HttpRequest) -> JsonResponse:
    return _json({"requests": selectors.rights_register(open_only=request.GET.get("open") == "1")})


@require_GET
@roles_required(Role.DPO, Role.SECURITY_OFFICER)
def breaches(request: HttpRequest) -> JsonResponse:
    return _json({"breaches": selectors.breaches_dashboard()})
