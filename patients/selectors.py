"""Reads of administrative data that other apps build on (policy-free: callers pass through the gate)."""

from __future__ import annotations

from datetime import datetime

from dpi.prepared import ByIdReader
from patients.models import IdentityMerge, Patient

# The patient row by id (identity decrypted): one prepared statement, no ORM compilation. Channels pass it to
# the gate (``gate.authorize_read``), which reads the row in the statement that records the access.
patient_reader = ByIdReader(Patient)


def patient_by_id(pk: int) -> Patient | None:
    """The patient row (identity decrypted), or None: one prepared statement, no ORM compilation."""
    return patient_reader.get(pk)

# (patient id, from, until): the traces of that file between those instants (None: unbounded).
FileWindow = tuple[int, datetime | None, datetime | None]


def person_files(patient_id: int) -> list[FileWindow]:
    """The files whose access traces belong in this patient's access report (identity vigilance).

    - Files merged together (a merge not undone, followed both ways and transitively) are one person: each
      file's traces, before and after the merge, belong to all of them (the merged file's events keep the id
      they were written with; the report gathers them instead of rewriting them).
    - A merge that was undone joined two people for a while: each one's report also lists the other file's
      traces from the merge to its undoing (the data of one lay in the other file meanwhile).
    """
    group = {int(patient_id)}
    while True:
        active = IdentityMerge.objects.filter(undone_at__isnull=True)
        linked = set(active.filter(merged_id__in=group).values_list("kept_patient_id", flat=True))
        linked |= set(active.filter(kept_patient_id__in=group).values_list("merged_id", flat=True))
        if linked <= group:
            break
        group |= linked
    windows: list[FileWindow] = [(pid, None, None) for pid in sorted(group)]
    undone = IdentityMerge.objects.filter(undone_at__isnull=False).values_list(
        "merged_id", "kept_patient_id", "merged_at", "undone_at")
    for merged_id, kept_id, merged_at, undone_at in undone.order_by("merged_at", "pk"):
        if (merged_id in group) == (kept_id in group):
            continue
        other = kept_id if merged_id in group else merged_id
        windows.append((other, merged_at, undone_at))
    return windows
