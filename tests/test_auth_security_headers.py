"""Security headers on every answer (CSP with a nonce, frame, referrer, permissions, no-store for signed-in
users) and ``manage.py check --deploy`` clean under production settings."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from access.policy import Role
from tests.auth_support import person, sign_in

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


def test_every_page_carries_the_security_headers(client):
    response = client.get(reverse("login"))
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert client.get(reverse("login"))["Content-Security-Policy"] != csp  # a new nonce each time
    assert len(nonce) >= 16
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response["Permissions-Policy"]


def test_pages_of_a_signed_in_user_are_not_cached(client):
    person("the.dpo", Role.DPO)
    sign_in(client, "the.dpo")
    response = client.get(reverse("authn-sessions"))
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_no_page_of_this_area_has_an_inline_script():
    for template in (ROOT / "templates" / "authn").glob("*.html"):
        assert "<script" not in template.read_text(), template
    for template in (ROOT / "templates" / "registration").glob("*.html"):
        assert "<script" not in template.read_text(), template


def _check_deploy(tmp_path, *tags):
    keyring = tmp_path / "keyring.json"
    keyring.write_text("{}")
    env = dict(os.environ)
    env.update({
        "DPI_PRODUCTION": "1",
        "DPI_SECRET_KEY": secrets.token_urlsafe(50)[:50],
        "DPI_ALLOWED_HOSTS": "dpi.example",
        "DPI_KEYRING_FILE": str(keyring),
        "DPI_DEBUG": "0",
    })
    tag_args = [arg for tag in tags for arg in ("--tag", tag)]
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING", *tag_args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_check_deploy_security_checks_are_clean_in_production(tmp_path):
    result = _check_deploy(tmp_path, "security")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_is_clean_in_production(tmp_path):
    """Every check, every app: no warning at all (any area's warning fails this)."""
    result = _check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
