"""Swagger UI at /api/docs/ renders in Chromium without tripping the Content Security Policy (no inline style
or script refused) when the page loads and an operation is opened."""

from __future__ import annotations

import pytest

from tests import ui_support
from tests.personas import PASSWORD
from tests.ui_support import sign_in

# pytest fixtures shared by the end-to-end modules
browser, fresh_ids, new_page = ui_support.browser, ui_support.fresh_ids, ui_support.new_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

LISTEN = """window.__csp = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));"""


def test_the_api_docs_render_with_no_csp_violation(fresh_ids, live_server, cast, new_page):
    page = new_page()
    page.add_init_script(LISTEN)
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
    sign_in(page, live_server.url, cast.physician, PASSWORD, next_path="/")
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector("#swagger-ui .opblock-summary", timeout=20_000)
    page.locator("#swagger-ui .opblock-summary").first.click()  # an operation opened: parameters, examples
    page.wait_for_selector("#swagger-ui .opblock-body", timeout=10_000)
    page.wait_for_timeout(500)
    assert refused + page.evaluate("window.__csp") == []
