"""Keep care grants in step with encounters, appointments, memberships and staff assignments.

Signals are used here (and only here) because ``patients`` must not import ``access``: the
administrative app records an admission without knowing who it lets in; access reacts in the same
transaction, so the grant exists exactly when the encounter does.
"""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from access.care_team import care_grants_for_unit_recompute, care_grants_recompute
from access.models import CareTeamMembership, StaffProfile
from patients.models import Appointment, Encounter
from patients.services import patient_records_moved


@receiver([post_save, post_delete], sender=Encounter)
@receiver([post_save, post_delete], sender=Appointment)
@receiver([post_save, post_delete], sender=CareTeamMembership)
def _patient_relationships_changed(sender, instance, **kwargs):
    if kwargs.get("raw"):
        return
    care_grants_recompute(patient_ids=[instance.patient_id])


@receiver(m2m_changed, sender=StaffProfile.units.through)
def _staff_units_changed(sender, instance, action, pk_set, **kwargs):
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    if isinstance(instance, StaffProfile):
        unit_ids = list(pk_set or []) or list(instance.units.values_list("pk", flat=True))
        if action == "post_clear":
            unit_ids = None
    else:
        unit_ids = [instance.pk]
    if unit_ids is None:
        care_grants_recompute(patient_ids=None)
    elif unit_ids:
        care_grants_for_unit_recompute(unit_ids=unit_ids)


@receiver(post_save, sender=StaffProfile)
def _staff_profile_changed(sender, instance, created, **kwargs):
    if created or kwargs.get("raw"):
        return
    unit_ids = list(instance.units.values_list("pk", flat=True))
    if unit_ids:
        care_grants_for_unit_recompute(unit_ids=unit_ids)


@receiver(patient_records_moved)
def _patient_records_moved(sender, patient_ids, **kwargs):
    """A merge, unmerge or split moved stays, appointments and memberships: the care grants follow them."""
    care_grants_recompute(patient_ids=list(patient_ids))
