"""Helpers for the UI tests (server-side and end-to-end): verified sessions, TOTP codes, the browser."""

from __future__ import annotations

import json
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


# --- the real server: `make run`'s launcher (gunicorn, worker, beat) on a scratch database -------------------
class LiveDpi:
    """The launcher started once per test session, and what the journeys need to use it as a person would."""

    def __init__(self, base_url: str, var: Path, env: dict[str, str]):
        self.base_url = base_url
        self.var = var
        self.env = env
        self.accounts = json.loads((var / "secrets" / "demo_accounts.json").read_text())
        self._last_code: dict[str, int] = {}

    def password(self, username: str) -> str:
        return self.accounts[username]["password"]

    def code(self, username: str) -> str:
        """A one-time code of the demo account, never one already used (a replay is refused): the next time
        step once the current one has been used."""
        from django_otp.oath import TOTP

        key = bytes.fromhex(self.accounts[username]["totp_key"])
        step = int(time.time()) // 30
        if self._last_code.get(username, -1) >= step:
            step = self._last_code[username] + 1
        self._last_code[username] = step
        totp = TOTP(key, 30, 0, 6, 0)
        totp.time = step * 30 + 1
        return f"{totp.token():06d}"

    def manage(self, *args: str) -> str:
        """``manage.py`` against the launcher's database (e.g. to issue an API token)."""
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True, timeout=120)
        return done.stdout

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            return conn.execute(query, params).fetchall()


ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_conn():
    import psycopg

    db = settings.DATABASES["default"]
    kw = {k: v for k, v in {"user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"],
                            "port": db["PORT"]}.items() if v}
    return psycopg.connect(dbname="postgres", autocommit=True, **kw)


@pytest.fixture(scope="session")
def live_dpi(tmp_path_factory):
    """`python -m dpi.launcher` (what `make run` starts: migrate, collectstatic, seed, gunicorn + Celery worker
    + beat) on its own scratch database, started once for every journey of the session, stopped with Ctrl-C."""
    import signal
    import subprocess
    import sys
    import urllib.request
    from urllib.parse import urlparse, urlunparse

    require_browser()
    db_name = (os.environ.get("DPI_TEST_DATABASE_NAME") or "test_dpi") + "_e2e"
    with _admin_conn() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    var = tmp_path_factory.mktemp("live-dpi-var")
    db = settings.DATABASES["default"]
    netloc = f"{db['USER']}{':' + db['PASSWORD'] if db['PASSWORD'] else ''}@{db['HOST']}" + (
        f":{db['PORT']}" if db["PORT"] else "")
    url = urlparse(f"postgresql://{netloc}/{db_name}")
    if db["HOST"].startswith("/"):  # a Unix socket (embedded PostgreSQL)
        url = urlparse(f"postgresql://{db['USER']}@/{db_name}?host={db['HOST']}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update({
        "DATABASE_URL": urlunparse(url),
        "REDIS_URL": settings.REDIS_URL,
        "DPI_CACHE_PREFIX": f"{settings.CACHES['default']['KEY_PREFIX']}-e2e",
        "DPI_BIND": f"127.0.0.1:{_free_port()}",
        "DPI_DEMO_PATIENTS": "60",
        "DPI_WEB_WORKERS": "2",
        "DPI_VAR_DIR": str(var),
    })
    log_path = var / "launcher.log"
    log = open(log_path, "a")  # noqa: SIM115 - the children write to it until the end of the session
    proc = subprocess.Popen([sys.executable, "-m", "dpi.launcher"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://{env['DPI_BIND']}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise AssertionError("the launcher stopped:\n" + log_path.read_text()[-4000:])
            try:
                with urllib.request.urlopen(base_url + "/accounts/login/", timeout=2):  # noqa: S310 - loopback
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the launcher did not serve the login page:\n" + log_path.read_text()[-4000:])
        yield LiveDpi(base_url, var, {**env, "DJANGO_SETTINGS_MODULE": "dpi.settings"})
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        with _admin_conn() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def session_browser():
    """One headless Chromium for the whole session (fresh contexts per person)."""
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


class Person:
    """A browser context for one person, recording every sub-resource that fails (4xx/5xx or no answer)."""

    def __init__(self, browser, locale: str = "fr-FR"):
        self.context = browser.new_context(viewport={"width": 1024, "height": 768}, locale=locale)
        self.context.set_default_timeout(20_000)
        self.page = self.context.new_page()
        self.failures: list[str] = []
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._failed)

    def _failed(self, request) -> None:
        # A search-as-you-type request cancelled by the page itself (the admin's autocomplete drops the previous
        # one at each key, a navigation drops pending ones) is not a failure of the server.
        if "ERR_ABORTED" in (request.failure or "") and request.resource_type in {"xhr", "fetch", "document"}:
            return
        # Chromium fetches the favicon in the background and drops the fetch when the page navigates away.
        if "ERR_ABORTED" in (request.failure or "") and "/favicon" in request.url:
            return
        self.failures.append(f"no answer {request.resource_type} {request.url} ({request.failure})")

    def _response(self, response) -> None:
        request = response.request
        if request.resource_type != "document" and response.status >= 400:
            self.failures.append(f"{response.status} {request.resource_type} {response.url}")

    def assert_no_failed_subresource(self) -> None:
        assert not self.failures, "sub-resources answered with an error:\n" + "\n".join(self.failures)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def person(session_browser):
    """``person()`` opens a browser context; at the end every one of them must have loaded all its
    sub-resources (CSS, scripts, images, XHR) without a 4xx/5xx."""
    people: list[Person] = []

    def make(locale: str = "fr-FR") -> Person:
        people.append(Person(session_browser, locale))
        return people[-1]

    yield make
    try:
        for p in people:
            p.assert_no_failed_subresource()
    finally:
        for p in people:
            p.close()


def live_sign_in(page, live: LiveDpi, username: str, *, next_path: str = "/") -> None:
    """The real sign-in of a demo account: user name and password, then the one-time code if asked."""
    page.goto(f"{live.base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", live.password(username))
    with page.expect_navigation():
        page.press("input[name=password]", "Enter")
    code_field = page.locator("input[name=token], input[name=otp_token]")
    if code_field.count():
        code_field.first.fill(live.code(username))
        with page.expect_navigation():
            code_field.first.press("Enter")


DOCS_IMG = ROOT / "docs" / "img"


def doc_screenshot(page, name: str) -> Path:
    """A screenshot for test-artifacts/, and for docs/img/ when DPI_UPDATE_SCREENSHOTS=1 (palette PNG,
    the viewport only: small files)."""
    path = screenshot(page, name)
    if os.environ.get("DPI_UPDATE_SCREENSHOTS") == "1":
        from PIL import Image

        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=False)
        with Image.open(path) as image:
            image.convert("RGB").quantize(colors=64).save(DOCS_IMG / f"ui-{name}.png", optimize=True)
    return path
