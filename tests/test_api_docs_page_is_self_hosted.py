"""/api/docs/ serves Swagger UI from dpi's own static files (no CDN), its script under the page's CSP nonce."""

import re

import pytest

from dpi.api.testing import bearer, make_api_client, verified_login

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


def test_an_integrator_opens_the_docs_with_a_token_and_no_session(client):
    """The page (no data) opens without a session and asks for a token; the schema answers only to a token
    (or a verified session), never anonymously."""
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="api-token"' in html and "showApi(\"\");" not in html  # nothing loaded before a token is given
    assert client.get("/api/schema/?format=json").status_code == 401
    _api_client, token = make_api_client(scopes=["medical:view"])
    schema = client.get("/api/schema/?format=json", headers=bearer(token))
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")


def test_api_client_help_and_errors_list_the_valid_scopes(capsys):
    from django.core.management import CommandError, call_command

    from dpi.api.management.commands.api_client import Command
    from dpi.api.scopes import ALL_SCOPES

    parser = Command().create_parser("manage.py", "api_client")
    help_text = parser.format_help()
    for name in ("medical:view", "administrative:search", "audit:view"):
        assert name in help_text
    with pytest.raises(CommandError) as refused:
        call_command("api_client", "create", "lab", "--scopes", "medical:read")
    message = str(refused.value)
    assert "medical:read" in message and all(scope in message for scope in ALL_SCOPES)
