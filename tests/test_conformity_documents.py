"""The documents the DPO keeps (register entry, DPIA inputs, patient notice) come from the configuration."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from dpi.compliance import documents
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def test_register_entry_and_dpia_inputs_come_from_the_settings(settings):
    settings.DPI_CONTROLLER_NAME = "CHU de Testville"
    settings.DPI_DPO_CONTACT = "Mme Martin, DPO"
    settings.DPI_AUDIT_RETENTION_MONTHS = 24
    entry = documents.register_entry()
    assert entry["controller"]["name"] == "CHU de Testville"
    assert entry["dpo"]["contact"] == "Mme Martin, DPO"
    assert entry["retention"]["access_traces_months"] == 24
    assert {c["gate_category"] for c in entry["data_categories"]} >= {"administrative", "medical", "restricted"}
    assert any(r["recipient"] == "physician" for r in entry["recipients"])
    assert all(r["recipient"] != "dpo" for r in entry["recipients"])  # the DPO reads traces, not records
    text = documents.register_entry_markdown()
    assert "CHU de Testville" in text and "24 mois" in text
    dpia = documents.dpia_inputs()
    assert dpia["settings"]["DPI_AUDIT_RETENTION_MONTHS"] == "24"
    assert any(m["code"] == "DPI-10" for m in dpia["measures"])
    json.dumps(dpia)  # structured output serialises


def test_the_patient_notice_is_french_and_follows_the_settings(settings):
    settings.DPI_RETENTION_PROFILE = "establishment"
    notice = documents.patient_notice_fr()
    assert "R1112-7" in notice and "bris de glace" in notice and "CNIL" in notice
    settings.DPI_RETENTION_PROFILE = "practice"
    settings.DPI_RETENTION_ACTIVE_YEARS = 5
    practice = documents.patient_notice_fr()
    assert "5 ans après votre dernière consultation" in practice
    assert practice != notice


def test_the_command_writes_every_document(tmp_path):
    call_command("dpo_documents", "--out", str(tmp_path))
    names = {p.name for p in tmp_path.iterdir()}
    assert names == set(documents.all_documents())
    json.loads((tmp_path / "registre-traitement.json").read_text())


def test_the_dpo_downloads_a_document_and_it_is_recorded(cast):
    from tests.helpers import audit_events

    client = verified_client(cast.dpo)
    response = client.get("/dpo/documents/information-patients.md")
    assert response.status_code == 200
    assert "Vos données de santé" in response.content.decode()
    assert audit_events(resource_type="dpo_document", actor_id=cast.dpo.pk)
    assert client.get("/dpo/documents/../../etc/passwd").status_code == 404
    assert verified_client(cast.nurse).get("/dpo/documents/information-patients.md").status_code == 403
