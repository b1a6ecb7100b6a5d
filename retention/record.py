"""What "the whole record" of a patient is, found from the models themselves, and how it is read, fingerprinted,
removed and put back.

Every model with a foreign key to ``patients.Patient`` is a part of the record:
- ``CASCADE`` relations (encounters, appointments, clinical items, amendments, objections, break-the-glass
  episodes, care-team memberships...) are archived and removed with the patient;
- ``SET_NULL`` relations (a staff member's own patient file) are recorded as links and set back on restore;
- derived tables (care grants, group object permissions) are removed, and recomputed on restore;
- ``PROTECT`` / ``RESTRICT`` relations (e.g. an open rights request) keep the patient live: such patients are
  not selected for archiving.

Discovered at run time, so a model added later by another area is archived with the record without changes
here. Reads go through the ORM, so encrypted columns come out decrypted (the archive re-encrypts them with its
own key) and go back in re-encrypted with the current live key.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.db.models.deletion import CASCADE, SET_NULL

from patients.models import Patient

DERIVED = frozenset({"access.caregrant", "access.patientgroupobjectpermission"})


@dataclass(frozen=True)
class Part:
    label: str  # app_label.model_name
    model: type[models.Model]
    column: str  # column holding the patient id
    attname: str
    kind: str  # patient | archive | link | derived | blocker

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def pk_column(self) -> str:
        return self.model._meta.pk.column


@cache
def parts() -> tuple[Part, ...]:
    found = [Part("patients.patient", Patient, "id", "id", "patient")]
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if not (isinstance(field, models.ForeignKey) and field.related_model is Patient):
                continue
            label = model._meta.label_lower
            on_delete = field.remote_field.on_delete
            if label in DERIVED:
                kind = "derived"
            elif on_delete is CASCADE:
                kind = "archive"
            elif on_delete is SET_NULL:
                kind = "link"
            else:
                kind = "blocker"
            found.append(Part(label, model, field.column, field.attname, kind))
    return tuple(found)


def parts_of(*kinds: str) -> list[Part]:
    return [p for p in parts() if p.kind in kinds]


def blockers_sql() -> str:
    """``AND NOT EXISTS`` clauses keeping live the patients a PROTECT relation refers to (alias ``p``)."""
    return "".join(
        f' AND NOT EXISTS (SELECT 1 FROM "{p.table}" b WHERE b."{p.column}" = p.id)' for p in parts_of("blocker")  # noqa: S608 - names from model metadata
    )


# --- reading ----------------------------------------------------------------------------------------------
class RecordJSONEncoder(DjangoJSONEncoder):
    """Django's encoder, but times to the microsecond as PostgreSQL keeps them (Django's stops at the
    millisecond): a restored record is the record that was archived, not one rounded down."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(o, datetime.time):
            return o.isoformat()
        return super().default(o)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | memoryview | bytearray):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def records_read(patient_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The rows of each patient, decrypted, as ``{patient_id: {"tables": {label: [row...]}}}``.

    One query per part for the whole batch. Values are JSON-ready except dates and decimals (``RecordJSONEncoder``).
    """
    out: dict[int, dict[str, Any]] = {pid: {"tables": {}} for pid in patient_ids}
    for part in parts_of("patient", "archive", "link"):
        names = [f.attname for f in part.model._meta.concrete_fields]
        qs = part.model._base_manager.filter(**{f"{part.attname}__in": patient_ids}).order_by("pk").values(*names)
        for row in qs:
            pid = row[part.attname]
            if part.kind == "link":
                out[pid].setdefault("links", {}).setdefault(part.label, []).append(row[part.model._meta.pk.attname])
                continue
            out[pid]["tables"].setdefault(part.label, []).append({k: _jsonable(v) for k, v in row.items()})
    return out


def categories_of(record: dict[str, Any]) -> list[str]:
    """Data categories present in a record (access.policy.Category values), for the audit trail."""
    tables = record["tables"]
    cats = ["administrative"]
    clinical = [label for label in tables if label.startswith("dpi.")]
    if clinical:
        cats.append("medical")
    if any(row.get("sensitive") for row in tables.get("dpi.clinicalnote", [])):
        cats.append("restricted")
    return cats


def live_digests(patient_ids: list[int]) -> dict[int, str]:
    """A fingerprint of each patient's live rows as stored (ciphertext included), without decrypting.

    Any insert, update or delete in any part of the record changes it. Parts are hashed in SQL (one query per
    part for the whole batch) and combined here in a fixed order.
    """
    per_part: dict[int, list[str]] = {pid: [] for pid in patient_ids}
    with connection.cursor() as cur:
        for part in parts_of("patient", "archive", "link"):
            cur.execute(
                f'SELECT t."{part.column}", count(*), md5(string_agg(t::text, chr(30) ORDER BY t."{part.pk_column}")) '  # noqa: S608 - names from model metadata
                f'FROM "{part.table}" t WHERE t."{part.column}" = ANY(%s) GROUP BY t."{part.column}"',
                [patient_ids],
            )
            found = {row[0]: f"{part.label}:{row[1]}:{row[2]}" for row in cur.fetchall()}
            for pid in patient_ids:
                per_part[pid].append(found.get(pid, f"{part.label}:0"))
    return {pid: hashlib.sha256("\n".join(items).encode()).hexdigest() for pid, items in per_part.items()}


def blocked(patient_ids: list[int]) -> dict[int, str]:
    """Patients a PROTECT relation refers to, with the relation's label."""
    out: dict[int, str] = {}
    with connection.cursor() as cur:
        for part in parts_of("blocker"):
            cur.execute(f'SELECT DISTINCT "{part.column}" FROM "{part.table}" WHERE "{part.column}" = ANY(%s)',  # noqa: S608 - names from model metadata
                        [patient_ids])
            for (pid,) in cur.fetchall():
                out.setdefault(pid, part.label)
    return out


# --- removing ---------------------------------------------------------------------------------------------
def live_rows_delete(patient_ids: list[int]) -> int:
    """Delete every live row of these patients (in the caller's transaction). Returns the rows deleted."""
    total = 0
    with connection.cursor() as cur:
        for part in parts_of("archive", "derived"):
            cur.execute(f'DELETE FROM "{part.table}" WHERE "{part.column}" = ANY(%s)', [patient_ids])  # noqa: S608 - names from model metadata
            total += cur.rowcount
        for part in parts_of("link"):
            cur.execute(f'UPDATE "{part.table}" SET "{part.column}" = NULL WHERE "{part.column}" = ANY(%s)',  # noqa: S608 - names from model metadata
                        [patient_ids])
        # Generic (django-guardian) object permissions name the patient by its id as text.
        ct = ContentType.objects.get_for_model(Patient)
        for table in ("guardian_userobjectpermission", "guardian_groupobjectpermission"):
            cur.execute(f"DELETE FROM {table} WHERE content_type_id = %s AND object_pk = ANY(%s)",  # noqa: S608 - names are constants
                        [ct.pk, [str(p) for p in patient_ids]])
        cur.execute("DELETE FROM patients_patient WHERE id = ANY(%s)", [patient_ids])
        total += cur.rowcount
    constraints_check()
    return total


def constraints_check() -> None:
    """Check deferred foreign keys now, inside the step, so a dangling reference fails the step (and is recorded
    on the job) rather than the commit."""
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SET CONSTRAINTS ALL DEFERRED")


# --- putting back -----------------------------------------------------------------------------------------
def _python_value(field: models.Field, value: Any) -> Any:
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"])
    if value is None or isinstance(field, models.JSONField):
        return value
    return field.to_python(value)


def record_insert(record: dict[str, Any]) -> None:
    """Re-insert an archived record with its original ids and timestamps (in the caller's transaction)."""
    by_label = {p.label: p for p in parts()}
    for label, rows in record["tables"].items():
        model = apps.get_model(label)
        fields = {f.attname: f for f in model._meta.concrete_fields}
        objs = [model(**{name: _python_value(fields[name], v) for name, v in row.items() if name in fields})
                for row in rows]
        model._base_manager.bulk_create(objs, batch_size=500)
        _timestamps_restore(model, rows)
    pid = record["tables"]["patients.patient"][0]["id"]
    for label, pks in record.get("links", {}).items():
        part = by_label.get(label)
        if part is None:
            continue
        part.model._base_manager.filter(pk__in=pks, **{f"{part.attname}__isnull": True}).update(
            **{part.attname: pid})
    constraints_check()


def _timestamps_restore(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """bulk_create stamps auto_now / auto_now_add fields with the current time: put the archived values back."""
    auto = [f for f in model._meta.concrete_fields
            if isinstance(f, models.DateField) and (getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))]
    if not auto or not rows:
        return
    pk = model._meta.pk
    cast = {f.attname: "timestamptz" if isinstance(f, models.DateTimeField) else "date" for f in auto}
    sets = ", ".join(f'"{f.column}" = v."{f.column}"::{cast[f.attname]}' for f in auto)
    cols = ", ".join(f'"{c}"' for c in [pk.column, *[f.column for f in auto]])
    values = ", ".join("(" + ", ".join(["%s"] * (1 + len(auto))) + ")" for _ in rows)
    params: list[Any] = []
    for row in rows:
        params.append(row[pk.attname])
        params.extend(row[f.attname] for f in auto)
    sql = (f'UPDATE "{model._meta.db_table}" AS t SET {sets} FROM (VALUES {values}) AS v({cols}) '  # noqa: S608 - names are constants
           f'WHERE t."{pk.column}" = v."{pk.column}"')
    with connection.cursor() as cur:
        cur.execute(sql, params)
