"""The reception site in French: model and field names a French reception desk uses ("Ajout de séjour"),
and an INS refusal that explains what to check, without a formula."""

from __future__ import annotations

import pytest

from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("url", "words"), [
    ("/admin/patients/encounter/add/", ["Ajout de séjour", "Unité", "Début", "Type"]),
    ("/admin/patients/appointment/add/", ["Ajout de rendez-vous", "Praticien", "Motif", "Unité"]),
    ("/admin/patients/patient/add/", ["Ajout de patient", "Nom de naissance", "Date de naissance"]),
    ("/admin/patients/encounter/", ["Sélectionnez l’objet séjour à changer", "séjour"]),
])
def test_the_reception_pages_name_things_in_french(cast, url, words):
    html = verified_client(cast.reception).get(url).content.decode()
    for word in words:
        assert word in html, word
    for english in ("encounter", "Encounter", "appointment", "practitioner", "Start", "Unit"):
        assert f">{english}<" not in html and f"{english}:" not in html, english


def test_a_wrong_ins_key_is_explained_without_a_formula(cast):
    client = verified_client(cast.reception)
    response = client.post("/admin/patients/patient/add/", {
        "birth_name": "MARTIN", "first_name": "Léa", "sex": "F", "birth_date": "1990-05-12",
        "identity_status": "PROV", "ins": "290057512345600", "confidentiality": "normal",
    })
    html = response.content.decode()
    assert "ne correspond pas au numéro" in html and "mod 97" not in html
