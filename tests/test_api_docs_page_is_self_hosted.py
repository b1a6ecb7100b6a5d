"""/api/docs/ serves Swagger UI from dpi's own static files (no CDN), its script under the page's CSP nonce."""

import re

import pytest

from dpi.api.testing import verified_login

pytestmark = pytest.mark.django_db


def test_the_docs_page_loads_nothing_from_elsewhere(cast, client):
    verified_login(client, cast.physician)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=\"https?://", html)
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in html


def test_the_docs_page_needs_a_sign_in(client):
    assert client.get("/api/docs/").status_code in {302, 401, 403}
