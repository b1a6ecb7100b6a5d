"""Identities recorded before the identity-vigilance rules are brought into line by migration 0007 without losing
data: a "qualified" identity with no recorded evidence (with or without an INS) takes the status its evidence
gives and keeps its INS, the old status kept in a flag; an INS contradicting the traits, an unknown birth place
and the same INS on two files are flagged, not changed; traits are written as the referential writes them; each
file touched gets an access trace. Run with Django's MigrationExecutor (back to 0006, legacy rows, forward)."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AccessEvent
from patients import services
from patients.ins import with_key
from patients.models import DuplicateSuspicion, IdentityFlag, Patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere

BEFORE, AFTER = ("patients", "0006_provenance"), ("patients", "0007_identities_brought_into_line")
GOOD_INS = with_key("1850375112001")  # a man born in March 1985 in Paris 12e


def _migrate(target) -> MigrationExecutor:
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events on the tables altered
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL DEFERRED")
    return executor


@pytest.fixture
def legacy():
    """Files as the previous version stored them (its models, no rule applied)."""
    executor = _migrate(BEFORE)
    old = executor.loader.project_state([BEFORE]).apps.get_model("patients", "Patient")

    def make(ipp, **fields):
        base = {"ipp": ipp, "birth_name": "LEGACY", "first_name": "JEAN", "first_names": "JEAN", "sex": "M",
                "birth_date": date(1985, 3, 14), "birthplace_insee": "75112", "identity_status": "PROV"}
        base.update(fields)
        base["ins_bidx"] = services.ins_blind_index(base.get("ins", ""))
        return old.objects.create(**base).pk

    files = {
        "qualified_with_ins": make("L1", identity_status="QUAL", ins=GOOD_INS),
        "qualified_without_ins": make("L2", identity_status="QUAL"),
        "validated_sex_contradicts": make("L3", identity_status="VALI", sex="F", ins=with_key("1850375112002"),
                                          birth_name="Lefèvre", first_name="Zoé", first_names="zoé marie"),
        "same_ins": make("L4", ins=GOOD_INS, birth_name="LEGACYBIS"),
        "unknown_place": make("L5", birthplace_insee="75999"),
        "clean": make("L6", birth_name="PROPRE"),
        "bad_trait": make("L7", birth_name="DUPONT2"),
    }
    _migrate(AFTER)
    return files


def _flags(pk):
    return {(f.kind, tuple(f.fields), f.previous_status) for f in IdentityFlag.objects.filter(patient_id=pk)}


def test_statuses_follow_their_evidence_and_nothing_is_lost(legacy):
    qualified = Patient.objects.get(pk=legacy["qualified_with_ins"])
    assert (qualified.identity_status, qualified.ins) == ("PROV", GOOD_INS)  # the INS is kept, no longer sent
    assert ("status_corrected", ("identity_status",), "QUAL") in _flags(qualified.pk)
    assert Patient.objects.get(pk=legacy["qualified_without_ins"]).identity_status == "PROV"
    assert ("status_corrected", ("identity_status",), "QUAL") in _flags(legacy["qualified_without_ins"])
    assert Patient.objects.count() == 7  # nothing deleted
    # Every file now passes the rules it can pass; the clean file is untouched and unflagged.
    assert _flags(legacy["clean"]) == set()
    assert not AccessEvent.objects.filter(patient_id=legacy["clean"], basis="identity:legacy_review").exists()


def test_anomalies_are_flagged_not_changed(legacy):
    incoherent = Patient.objects.get(pk=legacy["validated_sex_contradicts"])
    assert incoherent.ins == with_key("1850375112002") and incoherent.sex == "F"  # left as typed
    assert {("ins_incoherent", ("sex",), ""), ("status_corrected", ("identity_status",), "VALI")} <= \
        _flags(incoherent.pk)
    # Its traits are written as the referential writes them.
    assert (incoherent.birth_name, incoherent.first_name, incoherent.first_names) == ("LEFEVRE", "ZOE", "ZOE MARIE")
    assert ("birthplace", ("birthplace_insee",), "") in _flags(legacy["unknown_place"])
    assert Patient.objects.get(pk=legacy["bad_trait"]).birth_name == "DUPONT2"
    assert ("trait_invalid", ("birth_name",), "") in _flags(legacy["bad_trait"])
    # The same INS on two files: both flagged, the later one shown as a probable duplicate of the first.
    assert ("same_ins", ("ins",), "") in _flags(legacy["same_ins"])
    assert ("same_ins", ("ins",), "") in _flags(legacy["qualified_with_ins"])
    assert DuplicateSuspicion.objects.filter(patient_id=legacy["same_ins"], candidate_id=legacy["qualified_with_ins"],
                                             reason="same_ins").exists()


def test_each_file_touched_has_an_access_trace_naming_fields_not_values(legacy):
    [event] = AccessEvent.objects.filter(patient_id=legacy["validated_sex_contradicts"],
                                         basis="identity:legacy_review")
    assert event.details["status"] == ["VALI", "PROV"]
    assert set(event.details["flags"]) == {"ins_incoherent", "status_corrected"}
    assert {"birth_name", "first_name", "first_names", "identity_status"} <= set(event.details["fields"])
    assert "LEFEVRE" not in str(event.details) and "1850375112002" not in str(event.details)


def test_the_flag_is_resolved_when_the_identity_is_saved_through_the_rules(legacy, cast):
    patient = Patient.objects.get(pk=legacy["validated_sex_contradicts"])
    with pytest.raises(ValidationError) as refused:  # the incoherent INS is refused on the next edit...
        services.patient_update(patient=patient, actor=cast.reception, phone="0102030405")
    assert "sex" in refused.value.message_dict
    services.patient_update(patient=patient, actor=cast.reception, sex="M", birth_name="LEFEVRE")  # ...until fixed
    assert not IdentityFlag.objects.filter(patient_id=patient.pk, kind="ins_incoherent", resolved_at=None).exists()
    # The corrected status stays open until evidence is recorded.
    assert IdentityFlag.objects.filter(patient_id=patient.pk, kind="status_corrected", resolved_at=None).exists()
    services.patient_document_record(actor=cast.reception, patient=patient, mode="CN")
    assert not IdentityFlag.objects.filter(patient_id=patient.pk, resolved_at=None).exists()


def test_the_migration_is_reversible_and_gives_back_the_old_statuses(legacy):
    _migrate(BEFORE)
    with connection.cursor() as cur:
        cur.execute("SELECT identity_status FROM patients_patient WHERE id = %s", [legacy["qualified_with_ins"]])
        assert cur.fetchone() == ("QUAL",)
    _migrate(AFTER)


def test_the_identity_vigilance_cell_finds_them_in_the_reception_site(legacy):
    from access.policy import Role
    from tests.personas import make_user
    from tests.ui_support import verified_client

    client = verified_client(make_user("front.desk", Role.RECEPTION))
    listed = client.get("/admin/patients/patient/", {"to_review": "1"}).content.decode()
    assert ">L3<" in listed and ">L6<" not in listed  # the clean file is not on the worklist
    page = client.get(f"/admin/patients/patient/{legacy['validated_sex_contradicts']}/change/").content.decode()
    assert "INS en contradiction avec les traits" in page
