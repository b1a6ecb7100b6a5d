"""Helpers for the UI tests (server-side and end-to-end): verified sessions, TOTP codes, the browser."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.test import Client
from django.utils.module_loading import import_string
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def totp_device(user) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="ui-test", confirmed=True)


def totp_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The device's code now (or ``steps_ahead`` time steps later: within the default tolerance of one step,
    and not refused as a replay of the code used to sign in)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def _model_backend() -> str:
    """The backend that signs people in (force_login would take the first listed, which may be a guard)."""
    for path in settings.AUTHENTICATION_BACKENDS:
        if issubclass(import_string(path), ModelBackend):
            return path
    raise AssertionError("no ModelBackend in AUTHENTICATION_BACKENDS")


def verified_client(user) -> Client:
    """A test client signed in as ``user`` with a verified second factor (as after the sign-in's code step)."""
    client = Client()
    client.force_login(user, backend=_model_backend())
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = totp_device(user).persistent_id
    session.save()
    return client


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The browser's path; outside CI a missing browser skips the test, in CI it fails it."""
    path = chromium_path()
    if path is None:
        message = "no Chromium found (apt-get install chromium); end-to-end browser tests need it"
        if os.environ.get("CI"):
            pytest.fail(message + " — CI must run them")
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed — CI must run the browser tests")
        pytest.skip("playwright is not installed (pip install -r requirements.lock)")
    return path


@pytest.fixture(autouse=False)
def fresh_ids(transactional_db):
    """Transactional tests flush the database, and permissions come back with new ids: forget cached ones
    (access.care_team caches the id of the care-team permission)."""
    from django.contrib.contenttypes.models import ContentType

    import access.care_team

    access.care_team._perm_id = None
    ContentType.objects.clear_cache()
    yield
    access.care_team._perm_id = None
    ContentType.objects.clear_cache()


@pytest.fixture
def browser(monkeypatch, fresh_ids):
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test makes meanwhile are
    # ordinary synchronous ones (the live server answers from its own thread).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def new_page(browser):
    """Pages in fresh contexts (one per person), tablet-sized, French first."""
    contexts = []

    def make(locale: str = "fr-FR"):
        context = browser.new_context(viewport={"width": 1024, "height": 768}, locale=locale)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base_url: str, user, password: str, *, next_path: str = "/") -> None:
    """The real sign-in: user name and password, then the one-time code if the server asks for it."""
    device = totp_device(user)
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.press("input[name=password]", "Enter")
    code_field = page.locator("input[name=token], input[name=otp_token]")
    if code_field.count():
        code_field.first.fill(totp_code(device))
        with page.expect_navigation():
            code_field.first.press("Enter")
