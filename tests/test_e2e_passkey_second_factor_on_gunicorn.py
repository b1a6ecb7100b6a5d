"""In Chromium with a virtual authenticator (CDP WebAuthn), against dpi served by gunicorn: a physician adds a
passkey beside the authenticator app, signs in with the password then the passkey instead of a code, and confirms
a sensitive action (new backup codes) with the passkey instead of a typed code. Every step leaves its audit event.

http://localhost is a secure context, and "localhost" a valid relying-party id (an IP address is not).
"""

from __future__ import annotations

import pytest
from django_otp_webauthn.models import WebAuthnCredential

from tests import ui_support
from tests.helpers import audit_events
from tests.ops_support import gunicorn, server_env, url_of_test_database, wait_for
from tests.personas import PASSWORD
from tests.ui_support import screenshot, sign_in

browser, fresh_ids, new_page = ui_support.browser, ui_support.fresh_ids, ui_support.new_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def real_server(fresh_ids, tmp_path):
    with gunicorn(server_env(tmp_path, DATABASE_URL=url_of_test_database()), static=True) as base:
        yield base.replace("127.0.0.1", "localhost")


def _virtual_authenticator(page) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})


def test_a_passkey_signs_in_and_confirms_a_sensitive_action(real_server, cast, new_page):
    user = cast.physician
    page = new_page()
    _virtual_authenticator(page)

    # 1. Signed in with password + authenticator code, the physician adds a passkey on the account page.
    sign_in(page, real_server, user, PASSWORD, next_path="/accounts/sessions/")
    page.click("#passkey-register-button")
    wait_for(lambda: WebAuthnCredential.objects.filter(user=user, confirmed=True).exists(), timeout=20,
             what="the passkey to be registered")
    assert audit_events(action="account", basis="otp_enrolled", actor_id=user.pk)

    # 2. A new sign-in: password, then the passkey instead of a code.
    page.context.clear_cookies()
    page.goto(f"{real_server}/accounts/login/?next=/accounts/sessions/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.press("input[name=password]", "Enter")
    assert "/accounts/second-factor/" in page.url
    page.click("#passkey-verification-button")
    page.wait_for_url(f"{real_server}/accounts/sessions/**", timeout=20_000)
    screenshot(page, "passkey-signed-in")
    assert [e.details.get("device") for e in audit_events(action="login", basis="second_factor", actor_id=user.pk)
            ] == ["totp", "passkey"]

    # 3. A sensitive action asks for a fresh proof: the passkey gives it.
    page.goto(f"{real_server}/accounts/second-factor/backup-codes/")
    with page.expect_navigation():
        page.click("form.card button[type=submit]")
    assert page.locator("#passkey-verification-button").count() == 1  # the confirmation page offers it
    with page.expect_navigation(timeout=20_000):
        page.click("#passkey-verification-button")
    assert page.url.endswith("/accounts/second-factor/backup-codes/")
    with page.expect_navigation():
        page.click("form.card button[type=submit]")
    assert page.locator("ul.backup-codes li").count() == 10  # issued without typing a code
    assert [e.details.get("device") for e in audit_events(action="login", basis="fresh_otp", actor_id=user.pk)
            ] == ["passkey"]
