"""Every page names its icon, and /favicon.ico (asked for by browsers whatever the page says) finds it in the
static files instead of a 404."""

import pytest
from django.contrib.staticfiles import finders

from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def test_favicon_ico_leads_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].startswith("/static/favicon") and response["Location"].endswith(".ico")
    assert finders.find("favicon.ico") and finders.find("favicon.svg")


@pytest.mark.parametrize("path", ["/accounts/login/", "/patients/", "/admin/patients/patient/"])
def test_pages_link_the_icon(cast, client, path):
    c = client if path == "/accounts/login/" else verified_client(
        cast.reception if path.startswith("/admin/") else cast.physician)
    html = c.get(path).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
