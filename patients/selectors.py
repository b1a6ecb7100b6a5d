"""Reads of the administrative record that every channel shares (after the gate has decided)."""

from __future__ import annotations

from dpi.prepared import ByIdReader
from patients.models import Patient

_patient_reader = ByIdReader(Patient)


def patient_by_id(pk: int) -> Patient | None:
    """The patient row (identity decrypted), or None: one prepared statement, no ORM compilation."""
    return _patient_reader.get(pk)
