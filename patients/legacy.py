"""Identities recorded before the identity-vigilance rules, brought into line once (migration 0007).

Nothing is deleted: a status that rests on no recorded evidence (an identity typed "qualified" by hand, with
or without an INS) becomes the status its evidence gives, the old one kept in an ``IdentityFlag`` for the
identity-vigilance cell; an INS that is malformed or contradicts the traits, an unknown birth place, a trait
that cannot be written as the referential writes it and the same INS on two files are flagged, not changed;
traits that only differ by case, accents or spacing are written as the referential writes them. Each file
touched gets one access trace (``basis=identity:legacy_review``: fields and flags by name, never a value).

Works on the migration's historical models (``apps``) so that later model changes do not break it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.utils import timezone

from patients import ins as ins_rules
from patients import places

SYSTEM_TASK = "migration patients.0007"
TRAITS = ("birth_name", "first_name", "first_names")

# The access trace as audit 0005 stores it (this migration's own statement: later audit columns do not break it).
_EVENT = (
    "INSERT INTO audit_accessevent (actor_id, actor_username, actor_role, actor_unit, patient_id, category, "
    "resource_type, resource_id, action, outcome, basis, reason, channel, request_id, ip, user_agent, details) "
    "VALUES (NULL, '', 'system', '', %s, 'administrative', 'patient', %s, 'amend', 'allowed', "
    "'identity:legacy_review', %s, 'cli', '', NULL, '', %s::jsonb)"
)


def _status_from_evidence(p: Any) -> str:
    from patients.models import status_from_evidence

    document = bool(p.validation_mode and p.validation_date and (p.validated_by_id or p.validated_by_name))
    return status_from_evidence(insi=p.insi_date is not None, document=document,
                                doubtful_or_fictitious=p.identity_attribute in {"DOUT", "FICT"})


def review(p: Any) -> tuple[dict[str, Any], list[tuple[str, list[str]]]]:
    """What to change on one identity (as the referential writes it) and what to flag: ({field: new}, [(kind,
    fields)])."""
    changes: dict[str, Any] = {}
    flags: list[tuple[str, list[str]]] = []
    bad_traits: list[str] = []
    for name in TRAITS:
        value = getattr(p, name) or ""
        written = ins_rules.normalise_trait(value)
        if name == "first_names" and not written and p.first_name:
            written = ins_rules.normalise_trait(p.first_name)
        if written and not ins_rules.trait_valid(written):
            bad_traits.append(name)
        elif written != value:
            changes[name] = written
    first_name = changes.get("first_name", p.first_name)
    first_names = changes.get("first_names", p.first_names)
    if "first_name" not in bad_traits and first_names and first_name and first_names.split(" ")[0] != first_name:
        bad_traits.append("first_name")
    if bad_traits:
        flags.append(("trait_invalid", bad_traits))
    place = (p.birthplace_insee or "").strip().upper()
    if place != p.birthplace_insee:
        changes["birthplace_insee"] = place
    if place and not (places.well_formed(place) and places.is_known(place)):
        flags.append(("birthplace", ["birthplace_insee"]))
    if p.ins:
        number = ins_rules.normalise(p.ins)
        if number != p.ins:
            changes["ins"] = number
        if not ins_rules.is_valid(number):
            flags.append(("ins_invalid", ["ins"]))
        elif p.birth_date is not None:
            wrong = ins_rules.coherence_errors(number, sex=p.sex, birth_date=p.birth_date, birthplace=place)
            if wrong:
                flags.append(("ins_incoherent", sorted(wrong)))
    status = _status_from_evidence(p)
    if status != p.identity_status:
        changes["identity_status"] = status
        flags.append(("status_corrected", ["identity_status"]))
    return changes, flags


def bring_into_line(apps: Any, schema_editor: Any) -> None:
    from patients.services import ins_blind_index

    Patient = apps.get_model("patients", "Patient")  # noqa: N806 - historical models
    Flag = apps.get_model("patients", "IdentityFlag")  # noqa: N806
    Suspicion = apps.get_model("patients", "DuplicateSuspicion")  # noqa: N806
    now = timezone.now()
    touched: dict[int, dict[str, Any]] = {}
    new_flags = []
    for p in Patient.objects.filter(is_merged=False).order_by("pk").iterator(chunk_size=500):
        changes, flags = review(p)
        if "ins" in changes:
            changes["ins_bidx"] = ins_blind_index(changes["ins"])
        if changes:
            Patient.objects.filter(pk=p.pk).update(**changes)
        for kind, fields in flags:
            new_flags.append(Flag(patient_id=p.pk, kind=kind, fields=fields, flagged_at=now,
                                  previous_status=p.identity_status if kind == "status_corrected" else ""))
        if changes or flags:
            touched[p.pk] = {"system_task": SYSTEM_TASK, "fields": sorted(k for k in changes if k != "ins_bidx"),
                             "flags": [kind for kind, _f in flags],
                             "status": [p.identity_status, changes.get("identity_status", p.identity_status)]}
    # The same INS on two live files: both flagged, and the later one shown as a probable duplicate.
    by_ins: dict[str, list[int]] = defaultdict(list)
    for pk, bidx in (Patient.objects.filter(is_merged=False).exclude(ins_bidx="").order_by("pk")
                     .values_list("pk", "ins_bidx")):
        by_ins[bidx].append(pk)
    for pks in by_ins.values():
        if len(pks) < 2:
            continue
        for pk in pks:
            new_flags.append(Flag(patient_id=pk, kind="same_ins", fields=["ins"], flagged_at=now))
            touched.setdefault(pk, {"system_task": SYSTEM_TASK, "fields": [], "flags": []})["flags"].append("same_ins")
        Suspicion.objects.bulk_create([Suspicion(patient_id=pk, candidate_id=pks[0], reason="same_ins",
                                                 flagged_at=now) for pk in pks[1:]])
    Flag.objects.bulk_create(new_flags, batch_size=1000)
    if touched:
        reason = "identity recorded before the identity-vigilance rules, brought into line"
        with schema_editor.connection.cursor() as cur:
            cur.executemany(_EVENT, [(pk, str(pk), reason, json.dumps(details, separators=(",", ":")))
                                     for pk, details in sorted(touched.items())])


def undo(apps: Any, schema_editor: Any) -> None:
    """Reversing the migration puts the recorded statuses back (the traits stay as the referential writes them;
    the access traces stay: they are append-only)."""
    Patient = apps.get_model("patients", "Patient")  # noqa: N806
    Flag = apps.get_model("patients", "IdentityFlag")  # noqa: N806
    Suspicion = apps.get_model("patients", "DuplicateSuspicion")  # noqa: N806
    for flag in Flag.objects.filter(kind="status_corrected").exclude(previous_status=""):
        Patient.objects.filter(pk=flag.patient_id).update(identity_status=flag.previous_status)
    Suspicion.objects.filter(reason="same_ins").delete()
