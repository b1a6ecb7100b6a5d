"""Reception (issue 15, item 7): pickers and lists tell homonyms apart (birth date, sex, identity status), the
patient form groups the strict traits and takes identifiers on one line, and each refusal of the identity rules
is explained in French, the same words the service gives."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from django.utils.html import escape

from access.policy import Role
from patients import services
from patients.ins import with_key
from patients.models import Patient
from tests.personas import make_user
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def reception():
    return verified_client(make_user("front.desk", Role.RECEPTION))


@pytest.fixture
def homonyms():
    """Two MARTIN CLAIRE: one provisional woman born 1985, one validated (document checked) man born 1990."""
    woman = services.patient_create(birth_name="MARTIN", first_name="CLAIRE", sex="F", birth_date=date(1985, 3, 14))
    man = services.patient_create(birth_name="MARTIN", first_name="CLAIRE", sex="M", birth_date=date(1990, 7, 1),
                                  birthplace_insee="75112", validation_mode="PA",
                                  validation_date=date(2026, 1, 5), validated_by_name="GAM")
    return woman, man


def _shown(patient: Patient) -> list[str]:
    with translation.override("fr"):
        return [patient.birth_date.strftime("%d/%m/%Y"), str(patient.get_sex_display()),
                str(patient.get_identity_status_display())]


def test_the_picker_shows_birth_date_sex_and_status(reception, homonyms):
    found = reception.get("/admin/autocomplete/", {"term": "MARTIN", "app_label": "patients",
                                                   "model_name": "encounter", "field_name": "patient"}).json()
    texts = {int(r["id"]): r["text"] for r in found["results"]}
    for patient in homonyms:
        assert all(part in texts[patient.pk] for part in _shown(patient)), texts[patient.pk]
    assert len(set(texts.values())) == 2


def test_the_lists_show_birth_date_sex_and_status(reception, homonyms):
    woman, man = homonyms
    services.encounter_admit(patient=woman, unit=services.CareUnit.objects.create(code="u", name="Unité"),
                             start=timezone.now() - timedelta(hours=1))
    patients = reception.get("/admin/patients/patient/", {"q": "MARTIN"}).content.decode()
    woman_row = next(r for r in patients.split("<tr") if woman.ipp in r)
    man_row = next(r for r in patients.split("<tr") if man.ipp in r)
    for row, patient in ((woman_row, woman), (man_row, man)):
        # The list gives the date in its own format: compare the day, the sex and the status.
        assert str(patient.birth_date.year) in row
        assert all(part in row for part in _shown(patient)[1:]), row
    stays = reception.get("/admin/patients/encounter/").content.decode()
    assert all(part in stays for part in _shown(woman))


def test_the_form_groups_the_strict_traits_and_takes_identifiers_on_one_line(reception):
    html = reception.get("/admin/patients/patient/add/").content.decode()
    with translation.override("fr"):
        from django.utils.translation import gettext

        heading = gettext("Strict traits (INS referential)")
    assert heading != "Strict traits (INS referential)"
    strict = html.split(escape(heading), 1)[1].split("</fieldset>", 1)[0]
    for name in ("birth_name", "first_names", "first_name", "sex", "birth_date", "birthplace_insee"):
        assert f'name="{name}"' in strict, name
    assert 'name="ins"' not in strict and 'name="phone"' not in strict
    for name in ("ins", "social_security_number", "birthplace_insee", "birth_name", "first_names"):
        assert f'<textarea name="{name}"' not in html, name
        tag = html.split(f'name="{name}"', 1)[0].rsplit("<", 1)[1]
        assert tag.startswith("input type=\"text\""), (name, tag)


FIRST = {"birth_name": "DURAND", "first_name": "PAUL", "sex": "M", "birth_date": date(1985, 3, 14),
         "birthplace_insee": "75112"}
REFUSALS = {
    "ins_key": {"ins": with_key("1850375112001")[:13] + "00"},
    "ins_sex": {"sex": "F", "ins": with_key("1850375112001")},
    "ins_year": {"birth_date": date(1990, 3, 14), "ins": with_key("1850375112001")},
    "ins_month": {"birth_date": date(1985, 4, 14), "ins": with_key("1850375112001")},
    "ins_month_code": {"ins": with_key("1851375112001")},
    "ins_corsica": {"birth_date": date(1980, 3, 14), "ins": with_key("1800320004001"), "birthplace_insee": "2A004"},
    "ins_abroad": {"birthplace_insee": "99352", "ins": with_key("1850375112001")},
    "ins_country": {"birthplace_insee": "75112", "ins": with_key("1850399352001")},
    "birthplace_unknown": {"birthplace_insee": "75999"},
    "birthplace_malformed": {"birthplace_insee": "7511"},
    "trait_digits": {"birth_name": "DURAND2"},
    "first_name_not_first": {"first_names": "JEAN PAUL"},
    "doubtful_with_document": {"identity_attribute": "DOUT", "validation_mode": "CN",
                               "validation_date": date(2026, 1, 5)},
    "document_in_future": {"validation_mode": "CN", "validation_date": timezone.localdate() + timedelta(days=30)},
    "birth_in_future": {"birth_date": timezone.localdate() + timedelta(days=2)},
    "death_before_birth": {"date_of_death": date(1980, 1, 1)},
    "restricted_without_reason": {"confidentiality": "restricted"},
    "same_ins_twice": {"ins": with_key("1850375112009"), "birth_name": "DUPLICATA"},
}


def _service_refusal(fields: dict, language: str) -> dict[str, list[str]]:
    with translation.override(language), pytest.raises(ValidationError) as exc:
        services.patient_create(**fields, **({"validated_by_name": "GAM"} if "validation_mode" in fields else {}))
    return exc.value.message_dict


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_explained_in_french(reception, case):
    if case == "same_ins_twice":
        services.patient_create(**{**FIRST, "ins": REFUSALS[case]["ins"]})
    fields = {**FIRST, **REFUSALS[case]}
    french, english = _service_refusal(fields, "fr"), _service_refusal(fields, "en")
    form = {"confidentiality": "normal", "social_security_number": "", "ins": "", **{
        k: (v.isoformat() if isinstance(v, date) else v) for k, v in fields.items()}}
    count = Patient.objects.count()
    response = reception.post("/admin/patients/patient/add/", form)
    assert response.status_code == 200, "refused: the form comes back"
    html = response.content.decode()
    for field, messages in french.items():
        for message in messages:
            assert escape(message) in html, (field, message)
        assert messages != english[field], f"{field}: not translated: {messages}"
    assert Patient.objects.count() == count
