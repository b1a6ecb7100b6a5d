"""At the end of the archive period, after the director's decision: destruction leaves no table and no file holding
the patient's identity or clinical data (scanned with SQL over every text and binary column, and over the archive
storage); anonymisation leaves only counters. Access traces keep the patient id only."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from access.policy import Role
from retention import services
from retention.models import ArchivedPatient, ArchiveJob, ArchiveKey, StatisticsAggregate
from retention.testing import age, full_record, where_is
from tests.helpers import audit_events
from tests.personas import make_patient

pytestmark = pytest.mark.django_db

IDENTITY = {"birth_name": "QWERTZOVSKI", "first_name": "Philomène", "address": "77 impasse des Grues cendrées",
            "city": "Plouguernével", "phone": "0611223344", "email": "philomene.q@example.org",
            "occupation": "Souffleuse de verre"}
CLINICAL = ["thoracique", "Antécédent psychiatrique confidentiel", "Urticaire géante", "Suivi cardiologique",
            "1 comprimé le matin", "compte rendu QWERTZOVSKI"]


@pytest.fixture(autouse=True)
def _fast(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"


@pytest.fixture
def expired_archive(cast):
    patient = make_patient(**IDENTITY)
    full_record(patient=patient, author=cast.physician, unit=cast.cardio, other_user=cast.other_physician)
    # Last seen 21 years ago: archived now, and its legal period (20 years) is already over.
    age([patient.pk], last_activity=timezone.now() - timedelta(days=365 * 21))
    services.retention_run()
    assert where_is(patient.pk) == {"archived"}
    return patient


def scan_database(needles: list[str]) -> list[tuple[str, str, str]]:
    """Every (table, column, needle) where a text, JSON or binary column holds one of the needles."""
    hits = []
    with connection.cursor() as cur:
        cur.execute("""SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
                       JOIN information_schema.tables t USING (table_schema, table_name)
                       WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
                         AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea',
                                             'ARRAY')""")
        columns = cur.fetchall()
        for table, column, dtype in columns:
            for needle in needles:
                if dtype == "bytea":
                    cur.execute(f'SELECT count(*) FROM "{table}" WHERE position(%s::bytea in "{column}") > 0',  # noqa: S608 - names from the catalogue
                                [needle.encode()])
                else:
                    cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE %s',  # noqa: S608 - names from the catalogue
                                [f"%{needle}%"])
                if cur.fetchone()[0]:
                    hits.append((table, column, needle))
    return hits


def tables_naming(patient_id: int) -> set[str]:
    """Tables with a row whose patient column holds this id."""
    found = set()
    with connection.cursor() as cur:
        cur.execute("""SELECT c.table_name, c.column_name FROM information_schema.columns c
                       JOIN information_schema.tables t USING (table_schema, table_name)
                       WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
                         AND c.column_name IN ('patient_id', 'content_object_id')""")
        for table, column in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" = %s', [patient_id])  # noqa: S608 - names from the catalogue
            if cur.fetchone()[0]:
                found.add(table)
    return found


def scan_files(root, needles: list[str]) -> list[str]:
    if not root.exists():
        return []
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}:{n}" for n in needles if n.encode() in data]
    return hits


def test_destruction_leaves_no_identity_nor_clinical_data(cast, settings, expired_archive,
                                                          django_capture_on_commit_callbacks):
    patient = expired_archive
    needles = [*IDENTITY.values(), patient.ipp, *CLINICAL]
    # Before: the seeded values really were in the database (as clear text or under live encryption).
    stub = ArchivedPatient.objects.get(patient_id=patient.pk)
    assert ArchiveKey.objects.filter(archive=stub).exists()
    assert len([p for p in settings.DPI_ARCHIVE_DIR.rglob("*") if p.is_file()]) == 1

    decision = services.disposal_decision_record(user=cast.dim, action="destroy",
                                                 reference="Décision du directeur n° 2026-14")
    assert decision.archives_count == 1
    with django_capture_on_commit_callbacks(execute=True):
        run = services.retention_run()
    assert run.destroyed == 1 and run.errors == 0

    stub.refresh_from_db()
    assert stub.state == "destroyed" and stub.token is None and not stub.ipp_bidx and not stub.ins_bidx
    assert not ArchiveKey.objects.exists()
    assert where_is(patient.pk) == set()
    assert scan_database([cast.patient.birth_name])  # the scanner does find a live patient's identity
    assert scan_database(needles) == []
    # Only the traces and the retention tombstones still name the patient, by id.
    assert {t for t in tables_naming(patient.pk) if not t.startswith(("audit_accessevent", "retention_"))} == set()
    assert not [p for p in settings.DPI_ARCHIVE_DIR.rglob("*") if p.is_file()]
    assert scan_files(settings.DPI_ARCHIVE_DIR, needles) == []
    # The access traces of the whole life of the record remain, naming the patient by id only.
    events = audit_events(patient_id=patient.pk)
    steps = {e.details.get("step") for e in events if e.actor_role == "system"}
    assert {"export", "verify", "remove", "disposal:destroy"} <= steps
    assert ArchiveJob.objects.filter(patient_id=patient.pk, wrapped_key__isnull=False).count() == 0


def test_anonymisation_keeps_counters_only(cast, settings, expired_archive, django_capture_on_commit_callbacks):
    patient = expired_archive
    services.disposal_decision_record(user=cast.dim, action="anonymise", reference="Décision n° 2026-15")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.retention_run()
    assert run.anonymised == 1
    cells = {(a.metric, a.dimension, a.value): a.count for a in StatisticsAggregate.objects.all()}
    assert cells[("patients", "sex", "M")] == 1
    assert cells[("encounters", "unit", cast.cardio.code)] == 1
    assert cells[("problems", "icd10_chapter", "IX")] == 1  # I10 hypertension: diseases of the circulatory system
    assert sum(v for (m, dim, _), v in cells.items() if m == "patients" and dim == "age_band") == 1
    # No column of the statistics can hold a patient: metric, year, dimension, value, count.
    names = {f.name for f in StatisticsAggregate._meta.get_fields()}
    assert names == {"id", "metric", "year", "dimension", "value", "count"}
    assert scan_database([*IDENTITY.values(), patient.ipp, *CLINICAL]) == []
    assert not [p for p in settings.DPI_ARCHIVE_DIR.rglob("*") if p.is_file()]


def test_disposal_needs_a_decision_recorded_by_the_dim(cast, expired_archive):
    # Without a decision, the expired archive is kept.
    run = services.retention_run()
    assert run.destroyed == 0 and where_is(expired_archive.pk) == {"archived"}
    from django.core.exceptions import PermissionDenied

    from tests.personas import make_user

    for user in (cast.physician, cast.dpo, make_user("it.admin", Role.IT_ADMIN)):
        with pytest.raises(PermissionDenied):
            services.disposal_decision_record(user=user, action="destroy", reference="n° 1")
    assert any(e.outcome == "denied" for e in audit_events(actor_id=cast.physician.pk))
