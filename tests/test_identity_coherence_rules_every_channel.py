"""Coherence of the INS with the traits, and birth places, table-driven through the service, the REST API (the
JSON ADT feed's identity endpoint) and the reception admin: the same rule, the same field named, everywhere."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from access.policy import Role
from dpi.api.testing import bearer, make_api_client, post_json
from patients import services
from patients.ins import coherence_errors, with_key
from patients.models import Patient
from tests.personas import make_user
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere

# (case, sex, birth date, birth place, 13 first characters of the INS, fields refused)
CASES = [
    ("nir_metropole", "M", date(1985, 3, 14), "75112", "1850375112001", set()),
    ("nir_woman", "F", date(1985, 3, 14), "75112", "2850375112001", set()),
    ("sex_digit_contradicts", "F", date(1985, 3, 14), "75112", "1850375112001", {"sex"}),
    ("year_contradicts", "M", date(1990, 3, 14), "75112", "1850375112001", {"birth_date"}),
    ("month_contradicts", "M", date(1985, 4, 14), "75112", "1850375112001", {"birth_date"}),
    ("unknown_month_code_20", "M", date(1985, 7, 14), "75112", "1852075112001", set()),
    ("unknown_month_code_50", "M", date(1985, 7, 14), "75112", "1855075112001", set()),
    ("month_code_13_does_not_exist", "M", date(1985, 7, 14), "75112", "1851375112001", {"ins"}),
    ("corsica_2a_after_1976", "M", date(1979, 2, 2), "2A004", "179022A004003", set()),
    ("corsica_2b_after_1976", "F", date(1980, 6, 1), "2B033", "280062B033004", set()),
    ("corsica_20_before_1976", "M", date(1970, 2, 2), "2A004", "1700220004003", set()),
    ("corsica_20_after_1976", "M", date(1980, 2, 2), "2A004", "1800220004003", {"ins"}),
    ("corsica_2a_before_1976", "M", date(1970, 2, 2), "2A004", "170022A004003", {"ins"}),
    ("overseas_martinique", "M", date(1990, 11, 21), "97209", "1901197209001", set()),
    ("overseas_reunion", "F", date(2001, 1, 5), "97411", "2010197411002", set()),
    ("foreign_born", "F", date(1992, 5, 30), "99352", "2920599352001", set()),
    ("foreign_born_month_not_compared", "F", date(1992, 8, 30), "99352", "2920599352001", set()),
    ("foreign_born_other_country", "F", date(1992, 5, 30), "99350", "2920599352001", {"birthplace_insee"}),
    ("foreign_born_but_commune", "F", date(1992, 5, 30), "75112", "2920599352001", {"birthplace_insee"}),
    ("born_in_france_but_country", "M", date(1985, 3, 14), "99352", "1850375112001", {"birthplace_insee"}),
    ("nia_man", "M", date(1985, 7, 1), "99352", "7850399352001", set()),
    ("nia_woman_month_not_compared", "F", date(1985, 9, 1), "99134", "8850399134001", set()),
    ("nia_sex_contradicts", "F", date(1985, 3, 1), "99352", "7850399352001", {"sex"}),
    ("nia_year_contradicts", "M", date(1995, 3, 1), "99352", "7850399352001", {"birth_date"}),
    ("unknown_birth_place", "M", date(1985, 3, 14), "75999", "1850375112001", {"birthplace_insee"}),
    ("malformed_birth_place", "M", date(1985, 3, 14), "7511", "1850375112001", {"birthplace_insee"}),
]
IDS = [c[0] for c in CASES]


def _identity(sex, born, place, body, *, key_ok=True):
    ins = with_key(body)
    if not key_ok:
        ins = ins[:13] + f"{(int(ins[13:]) + 1) % 100:02d}"
    return {"birth_name": "MARTIN", "first_name": "CLAIRE", "sex": sex, "birth_date": born,
            "birthplace_insee": place, "ins": ins}


@pytest.mark.parametrize(("case", "sex", "born", "place", "body", "refused"), CASES, ids=IDS)
def test_through_the_service(case, sex, born, place, body, refused):
    fields = _identity(sex, born, place, body)
    if refused:
        with pytest.raises(ValidationError) as exc:
            services.patient_create(**fields)
        assert refused <= set(exc.value.message_dict), exc.value.message_dict
        assert not Patient.objects.filter(birth_name="MARTIN").exists()
    else:
        patient = services.patient_create(**fields)
        assert patient.identity_status == "PROV" and patient.ins == fields["ins"]


@pytest.mark.parametrize(("case", "sex", "born", "place", "body", "refused"), CASES, ids=IDS)
def test_through_the_api(client, case, sex, born, place, body, refused):
    _, token = make_api_client()
    fields = _identity(sex, born, place, body)
    response = post_json(client, "/api/patients/", {**fields, "birth_date": born.isoformat()}, **bearer(token))
    if refused:
        assert response.status_code == 400, response.content
        assert refused <= set(response.json()), response.json()
        assert not Patient.objects.filter(birth_name="MARTIN").exists()
    else:
        assert response.status_code == 201, response.content
        assert response.json()["identity_status"] == "PROV"


@pytest.mark.parametrize(("case", "sex", "born", "place", "body", "refused"), CASES, ids=IDS)
def test_through_the_admin(case, sex, born, place, body, refused):
    fields = _identity(sex, born, place, body)
    response = verified_client(make_user("front.desk", Role.RECEPTION)).post("/admin/patients/patient/add/", {
        **fields, "birth_date": born.isoformat(), "confidentiality": "normal", "social_security_number": "",
    })
    if refused:
        assert response.status_code == 200
        html = response.content.decode()
        for field in refused:
            assert f"errors field-{field}" in html, field
        assert not Patient.objects.filter(birth_name="MARTIN").exists()
    else:
        assert response.status_code == 302, response.content.decode()[:3000]
        assert Patient.objects.get(birth_name="MARTIN").identity_status == "PROV"


def test_a_wrong_key_is_refused_before_any_coherence_check():
    fields = _identity("M", date(1985, 3, 14), "75112", "1850375112001", key_ok=False)
    with pytest.raises(ValidationError) as exc:
        services.patient_create(**fields)
    assert set(exc.value.message_dict) == {"ins"}


def test_unknown_sex_is_not_compared():
    assert coherence_errors(with_key("1850375112001"), sex="U", birth_date=date(1985, 3, 1)) == {}


def test_strict_traits_are_stored_as_the_referential_writes_them():
    patient = services.patient_create(birth_name="Le Gall-Hervé", first_name="Zoé", first_names="zoé  Cœur",
                                      sex="F", birth_date=date(1990, 1, 1), birthplace_insee="2a004")
    assert (patient.birth_name, patient.first_name, patient.first_names, patient.birthplace_insee) == (
        "LE GALL-HERVE", "ZOE", "ZOE COEUR", "2A004")
    with pytest.raises(ValidationError) as exc:
        services.patient_create(birth_name="DUPONT2", first_name="JEAN", sex="M", birth_date=date(1990, 1, 1))
    assert "birth_name" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.patient_create(birth_name="DUPONT", first_name="PAUL", first_names="JEAN PAUL", sex="M",
                                birth_date=date(1990, 1, 1))
    assert "first_name" in exc.value.message_dict
