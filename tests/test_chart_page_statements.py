"""The chart page costs a fixed list of SQL statements (issue #18), and its cheaper reads give what the ORM gave.

The page sends: the session, the user, the second-factor device, the staff profile and its units (the
middleware), the gate's one statement for the medical view and the identity (facts query, both access events
and the patient row), then one statement per section. The banner and the latest vital signs are
drawn from the sections when those hold the whole record, and read by their own queries otherwise. A regression
that adds a statement fails here; so does one where the faster paths (sections compiled once, banner from the
sections, blank forms drawn once per worker) would show something else than the plain ORM reads and form
rendering.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from dpi import services as dpi_services
from dpi.models import Allergy, ClinicalNote, Document, Observation, Prescription, Problem
from dpi.web import chart_selectors, form_html, selectors
from dpi.web.forms import NoteForm, VitalsForm
from patients import services as patient_services
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db

# What the page reads, in order: table named in each statement.
CHART_STATEMENTS = [
    "django_session", "auth_user", "otp_totp_totpdevice", "access_staffprofile", "access_staffprofile_units",
    # the gate: the medical view, then the identity (one facts query, both events, the patient row)
    "INSERT INTO audit_accessevent",
    "patients_encounter", "dpi_clinicalnote", "dpi_observation", "dpi_prescription", "dpi_document", "dpi_allergy",
    "dpi_problem",
]


def _fill(patient, author, encounter, n: int, *, vitals: bool = True) -> None:
    now = timezone.now()
    for i in range(n):
        dpi_services.note_create(patient=patient, author=author, encounter=encounter, body=f"note {i}",
                                 title=f"Title {i}" if i % 2 else "", sensitive=i % 3 == 0)
        dpi_services.observation_record(patient=patient, author=author, label=f"Lab {i % 4}", value=Decimal(i),
                                        loinc="" if i % 2 else f"{2000 + i % 4}-1", reference_high=Decimal(3),
                                        effective_at=now - timedelta(hours=i))
        Prescription.objects.create(patient=patient, author=author, medication=f"Drug {i}", instructions="x",
                                    start=now.date() - timedelta(days=i))
        Allergy.objects.create(patient=patient, author=author, substance=f"Allergen {i}",
                               clinical_status="active" if i % 3 else "inactive",
                               verification="refuted" if i % 5 == 4 else "confirmed")
        Problem.objects.create(patient=patient, author=author, icd10="I10", label=f"Problem {i}",
                               status="active" if i % 2 else "resolved")
        dpi_services.document_add(patient=patient, author=author, title=f"Doc {i}", content=b"x" * (i + 1))
    if vitals:
        dpi_services.vitals_record(patient=patient, author=author, encounter=encounter,
                                   effective_at=now - timedelta(minutes=5),
                                   values={"systolic": "120", "diastolic": "80", "pulse": "70"})
        dpi_services.vitals_record(patient=patient, author=author, encounter=encounter,
                                   effective_at=now - timedelta(minutes=50), values={"pulse": "90", "spo2": "97"})


def _statements(client, patient) -> list[str]:
    url = f"/patients/{patient.pk}/"
    assert client.get(url).status_code == 200  # warm caches (content types, the session's activity stamp)
    with CaptureQueriesContext(connections["default"]) as default, \
            CaptureQueriesContext(connections["audit"]) as independent:
        response = client.get(url)
    assert response.status_code == 200
    assert not independent.captured_queries
    return [q["sql"] for q in default.captured_queries if "SAVEPOINT" not in q["sql"]
            # the session's activity stamp, written at most once a minute (not the page's doing)
            and not q["sql"].startswith(("UPDATE \"django_session\"", "BEGIN", "COMMIT"))]


def _assert_chart_statements(statements: list[str]) -> None:
    assert len(statements) == len(CHART_STATEMENTS), statements
    for sql, table in zip(statements, CHART_STATEMENTS, strict=True):
        assert table in sql, (table, sql[:200])
    # The row, read only when both decisions are allowed (both events inserted).
    assert "r.* FROM f CROSS JOIN (SELECT count(*) AS n FROM e) n LEFT JOIN (SELECT" in statements[5]
    assert statements[5].endswith("r ON n.n = 2")


def test_a_nurse_chart_is_thirteen_statements(cast):
    _fill(cast.patient, cast.physician, cast.encounter, 3)
    _assert_chart_statements(_statements(verified_client(cast.nurse), cast.patient))


def test_a_physician_chart_adds_only_the_sensitive_notes_check(cast):
    # A physician may read sensitive notes: one more statement asks whether there are any, and the gate's
    # restricted-category decision (facts + event, one statement) when there are.
    _fill(cast.patient, cast.physician, cast.encounter, 3)
    statements = _statements(verified_client(cast.physician), cast.patient)
    assert "dpi_clinicalnote" in statements[6] and "sensitive" in statements[6]
    assert "access_caregrant" in statements[7] and "INSERT INTO audit_accessevent" in statements[7]
    _assert_chart_statements(statements[:6] + statements[8:])


def test_a_record_past_the_section_limits_reads_the_banner_and_vitals_on_their_own(cast):
    big = make_patient()
    encounter = patient_services.encounter_admit(patient=big, unit=cast.cardio)
    _fill(big, cast.physician, encounter, selectors.OBSERVATION_LIMIT + 1, vitals=False)
    statements = _statements(verified_client(cast.nurse), big)
    # The sections, then the banner's allergies, problems and stay, then the latest vital signs.
    _assert_chart_statements(statements[:-4])
    assert ["dpi_allergy" in statements[-4], "dpi_problem" in statements[-3], "patients_encounter" in statements[-2],
            "dpi_observation" in statements[-1]] == [True] * 4


@pytest.mark.parametrize("n", [0, 1, 8, selectors.SECTION_LIMIT + 2])
def test_the_banner_and_vitals_from_the_sections_are_those_the_queries_give(cast, n):
    patient = make_patient()
    encounter = patient_services.encounter_admit(patient=patient, unit=cast.cardio)
    _fill(patient, cast.physician, encounter, n, vitals=n > 0)
    if n == 1:
        Allergy.objects.all().delete()
        dpi_services.allergy_none_known(patient=patient, author=cast.physician)
    data = selectors.chart_data(patient, include_sensitive=True)
    from_sections = chart_selectors.banner_from_chart(data)
    if n > selectors.SECTION_LIMIT:
        assert from_sections is None  # cut sections: the banner is read on its own
    else:
        queried = chart_selectors.banner(patient.pk)
        assert [a.pk for a in from_sections.allergies] == [a.pk for a in queried.allergies]
        assert [p.pk for p in from_sections.problems] == [p.pk for p in queried.problems]
        assert (from_sections.allergy_state, from_sections.more_problems) == (queried.allergy_state,
                                                                            queried.more_problems)
        assert getattr(from_sections.stay, "pk", None) == getattr(queried.stay, "pk", None)
    assert (chart_selectors.vitals_latest(patient.pk, data.observations)
            == chart_selectors.vitals_latest(patient.pk))


def test_compiled_sections_give_the_orm_rows(cast):
    _fill(cast.patient, cast.physician, cast.encounter, 4)
    other = make_patient()
    patient_services.encounter_admit(patient=other, unit=cast.cardio)
    for patient in (cast.patient, other):
        for sensitive in (False, True):
            data = selectors.chart_data(patient, include_sensitive=sensitive)
            notes = ClinicalNote.objects.filter(patient=patient).select_related("author", "encounter__unit")
            if not sensitive:
                notes = notes.filter(sensitive=False)
            expected = {
                "notes": notes.order_by("-created_at"),
                "observations": Observation.objects.filter(patient=patient).order_by("-effective_at"),
                "prescriptions": Prescription.objects.filter(patient=patient).order_by("-start", "-pk"),
                "documents": Document.objects.filter(patient=patient).defer("content").order_by("-created_at"),
                "allergies": Allergy.objects.filter(patient=patient).order_by("-created_at"),
                "problems": Problem.objects.filter(patient=patient).order_by("status", "-created_at"),
            }
            for name, queryset in expected.items():
                got, want = getattr(data, name).rows, list(queryset)
                assert [o.pk for o in got] == [o.pk for o in want], name
                for a, b in zip(got, want, strict=True):
                    loaded = [f.attname for f in type(b)._meta.concrete_fields if f.attname in b.__dict__]
                    # every loaded field equal once decrypted and converted; deferred ones deferred alike
                    assert {k: a.__dict__[k] for k in loaded} == {k: b.__dict__[k] for k in loaded}, name
                    assert a.get_deferred_fields() == b.get_deferred_fields()
    note = selectors.chart_data(cast.patient, include_sensitive=True).notes.rows[0]
    with CaptureQueriesContext(connections["default"]) as ctx:  # related rows came with the note
        assert note.author.username == cast.physician.username
        assert note.encounter.unit.name == cast.cardio.name
    assert not ctx.captured_queries


def test_a_blank_form_is_drawn_once_and_the_same_as_afresh(cast):
    form_html._cache.clear()
    initial = {"effective_at": "2026-01-02T03:04"}
    key = ("vitals-test", initial["effective_at"])
    with translation.override("fr"):
        kept = form_html.blank_fields_html(key, lambda: VitalsForm(initial=initial, auto_id="id_vitals_%s"))
        assert kept == form_html.fields_html(VitalsForm(initial=initial, auto_id="id_vitals_%s"))
        assert 'value="2026-01-02T03:04"' in kept["effective_at"]
        assert form_html.blank_fields_html(key, lambda: pytest.fail("drawn again")) is kept
    with translation.override("en"):
        english = form_html.blank_fields_html(key, lambda: VitalsForm(initial=initial, auto_id="id_vitals_%s"))
    assert english is not kept and english != kept  # kept per language
    # A form with data (and its errors) is always drawn afresh, never kept.
    bound = NoteForm({"kind": "progress", "body": ""}, role="physician")
    assert not bound.is_valid()
    drawn = form_html.fields_html(bound, key=("note", "physician", False))
    assert "errorlist" in drawn["body"] and len(form_html._cache) == 2
