""""The whole record" is found from the models: every table that refers to a patient is archived, linked,
derived or keeps the patient live; nothing refers to a part of the record without referring to the patient."""

import pytest
from django.apps import apps
from django.db import models
from django.utils import timezone

from retention import record, services
from retention.testing import age, where_is
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


def test_every_reference_to_a_part_of_the_record_is_itself_part_of_it():
    parts = {p.model for p in record.parts() if p.kind in ("patient", "archive")}
    covered = {p.model for p in record.parts()}
    orphans = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed or model in covered:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model in parts \
                    and field.remote_field.on_delete is not models.SET_NULL:
                orphans.append(f"{model._meta.label}.{field.name}")
    assert orphans == [], "these rows would be lost or block archiving; give them a patient foreign key"


def test_staff_link_is_a_link_and_grants_are_derived():
    kinds = {p.label: p.kind for p in record.parts()}
    assert kinds["access.staffprofile"] == "link"
    assert kinds["access.caregrant"] == "derived"
    assert kinds["dpi.clinicalnote"] == "archive"


def test_an_open_rights_request_keeps_the_patient_live(cast, settings, tmp_path):
    """compliance.RightsRequest refers to the patient with PROTECT: while it exists, the record stays live."""
    settings.DPI_ARCHIVE_DIR = tmp_path
    from dpi.compliance.models import RightsRequest

    assert "compliance.rightsrequest" in {p.label for p in record.parts_of("blocker")}
    held, free = make_patient(), make_patient()
    age([held.pk, free.pk], last_activity=timezone.now() - timezone.timedelta(days=365 * 6))
    RightsRequest.objects.create(patient=held, kind="access", received_at=timezone.now(),
                                 due_at=timezone.localdate(), identity_proof="CNI", registered_by=cast.reception)
    due = services.due_patient_ids(today=timezone.localdate())
    assert free.pk in due and held.pk not in due
    run = services.retention_run()
    assert run.archived == 1
    assert where_is(held.pk) == {"live"} and where_is(free.pk) == {"archived"}
