"""The conformity page names the roles whose second factors it counts in words ("médecin"), never by code."""

import pytest

from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def test_second_factor_lines_name_the_role_in_french(cast):
    html = verified_client(cast.dpo).get("/dpo/conformity/").content.decode()
    assert "Second facteur : médecin" in html
    assert "Second facteur : infirmier·ère" in html
    assert "Second facteur : physician" not in html and "Second facteur : nurse" not in html
