"""Patient lists show the used name when there is one and sort by it: WAGNER Adrienne, born ALVES, is listed
among the W's on the reception site and in the clinicians' search, not among the A's. The reception site's
breadcrumb is French."""

from __future__ import annotations

import pytest

from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def names(cast):
    make_patient(birth_name="ALVES", used_name="WAGNER", first_name="Adrienne", sex="F")
    make_patient(birth_name="ARNAUD", first_name="Adam")
    make_patient(birth_name="VIDAL", first_name="Adeline", sex="F")
    make_patient(birth_name="ZIDANE", first_name="Denis")


def _order(html: str, shown: list[str]) -> list[str]:
    return sorted(shown, key=html.index)


def test_the_reception_list_sorts_by_the_name_it_shows(cast, names):
    html = verified_client(cast.reception).get("/admin/patients/patient/").content.decode()
    shown = ["ARNAUD ADAM", "VIDAL ADELINE", "WAGNER ADRIENNE", "ZIDANE DENIS"]
    assert _order(html, shown) == shown


def test_the_clinicians_search_sorts_by_the_name_it_shows(cast, names):
    html = verified_client(cast.physician).get("/patients/", {"q": "ad"}).content.decode()
    shown = ["ARNAUD ADAM", "VIDAL ADELINE", "WAGNER ADRIENNE"]
    assert _order(html, shown) == shown


def test_the_reception_breadcrumb_is_french(cast):
    html = verified_client(cast.reception).get("/admin/patients/patient/").content.decode()
    assert "Patients (données administratives)" in html
    assert "administrative data" not in html
