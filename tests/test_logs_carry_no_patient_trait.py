"""No identifier in any log (issue #13 finding 7): searches by NIR, name, birth date and IPP, served by the real
gunicorn with the project's configuration and in process, leave none of them in any log line; every line is
JSON with the request id; exception texts and Celery task payloads never reach a log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings

from dpi import launcher
from dpi.logs import JsonFormatter
from patients.ins import with_key
from tests.helpers import audit_events
from tests.personas import make_patient
from tests.ui_support import verified_client

ROOT = Path(__file__).resolve().parent.parent
NIR = with_key("2850775123456")
NAME = "ZORGLUBIENNE"
GIVEN = "Hermeline"
BIRTH = "1985-07-14"
BIRTH_DATE = __import__("datetime").date(1985, 7, 14)
BIRTH_FR = "14/07/1985"
IPP = "IPPZ99887766"
pytestmark = pytest.mark.django_db
MARKERS = [NIR, NAME, GIVEN, BIRTH, BIRTH_FR, IPP, NIR[:13], NAME.lower()]


def searches() -> list[str]:
    """Every search by identifier that dpi offers, as a URL with the planted values in its query string."""
    return [
        "/patients/?" + urlencode({"q": NAME}),
        "/patients/?" + urlencode({"q": NIR}),
        "/patients/?" + urlencode({"q": BIRTH_FR}),
        "/patients/?" + urlencode({"q": IPP}),
        "/api/patients/?" + urlencode({"ins": NIR, "family": NAME, "given": GIVEN, "birth_date": BIRTH}),
        "/fhir/Patient?" + urlencode({"identifier": f"urn:oid:1.2.250.1.213.1.4.8|{NIR}", "family": NAME}),
        "/fhir/Patient?" + urlencode({"birthdate": BIRTH, "given": GIVEN}),
        "/fhir/Patient?" + urlencode({"identifier": f"urn:dpi:ipp|{IPP}"}),
        "/admin/patients/patient/?" + urlencode({"q": NAME}),
        "/admin/patients/patient/?" + urlencode({"q": NIR}),
        # A page that does not exist and one refused: Django logs both.
        "/patients/999999999/notes/?" + urlencode({"q": NAME}),
        "/nowhere/" + quote(NAME) + "/?" + urlencode({"ins": NIR}),
        "/dpo/access-log/?" + urlencode({"patient": NIR}),
    ]


def _persona(url: str) -> str:
    return "reception" if url.startswith("/admin/") else "physician"


def _accept(url: str) -> str:
    return "application/json" if url.startswith(("/api/", "/fhir/")) else "text/html"


def assert_no_marker(text: str, where: str) -> None:
    found = [m for m in MARKERS if m in text]
    assert not found, f"{where} holds {found}:\n{text[-3000:]}"


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"log line is not JSON: {line[:300]}")
    return parsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    host = db["HOST"] or "127.0.0.1"
    if host.startswith("/"):
        return f"postgresql://{auth}@/{db['NAME']}?host={quote(host)}"
    return f"postgresql://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def planted(cast):
    return make_patient(ins=NIR, birth_name=NAME, first_name=GIVEN, birth_date=BIRTH_DATE, ipp=IPP, sex="F")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_with_the_project_config_logs_no_identifier(cast, planted, tmp_path):
    """The web process exactly as `make run` starts it (dpi.launcher.web_command), on the test database."""
    cookies = {
        who: verified_client(getattr(cast, who)).cookies[settings.SESSION_COOKIE_NAME].value
        for who in ("physician", "reception")
    }
    bind = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": _database_url(),
            "DPI_WEB_WORKERS": "1",
            "DPI_VAR_DIR": str(tmp_path),
            "DPI_STATIC_ROOT": str(settings.STATIC_ROOT),
            "DPI_KEYRING_FILE": str(settings.DPI_KEYRING_FILE),
            "DPI_SECRET_KEY": settings.SECRET_KEY,
        }
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log_path = tmp_path / "web.log"
    with open(log_path, "a") as log:
        proc = subprocess.Popen(  # noqa: S603
            launcher.web_command(sys.executable, bind, "1"), cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        base = f"http://{bind}"
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).close()  # noqa: S310 - loopback only
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("gunicorn did not start:\n" + log_path.read_text()[-3000:])
        statuses = {}
        for url in searches():
            request = urllib.request.Request(  # noqa: S310 - loopback only
                base + url,
                headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookies[_persona(url)]}",
                         "Referer": base + "/patients/?" + urlencode({"q": NAME}), "Accept": _accept(url)},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 - loopback only
                    statuses[url] = r.status
                    body = r.read().decode()
            except urllib.error.HTTPError as e:
                statuses[url] = e.code
                body = ""
            if url.startswith("/patients/?q=") and url.endswith(quote(NAME)):
                assert f"/patients/{planted.pk}/" in body, "the search should find the planted patient"
        # The worker has written every access line once the last response is read; give the pipe a moment.
        for _ in range(20):
            if log_path.read_text().count('"gunicorn.access"') >= len(searches()) + 1:
                break
            time.sleep(0.25)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    output = log_path.read_text()
    assert 500 not in statuses.values(), statuses
    assert_no_marker(output, "gunicorn's output")
    records = json_lines(output)
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    assert len(access) >= len(searches()), output[-3000:]
    for r in access:
        assert r["request_id"], r
        assert "?" not in r["http"]["path"]
    assert {r["http"]["path"] for r in access} >= {"/patients/", "/api/patients/", "/fhir/Patient",
                                                   "/admin/patients/patient/"}
    assert statuses["/admin/patients/patient/?" + urlencode({"q": NAME})] == 200, statuses
    assert any(r["http"]["has_query"] for r in access)


@pytest.fixture
def captured():
    """What the project's LOGGING writes, read back from a buffer on the same formatter."""
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("django", "django.request", "django.server"))]
    for lg in loggers:
        lg.addHandler(handler)
    yield stream
    for lg in loggers:
        lg.removeHandler(handler)


def test_settings_log_json_through_the_scrubbing_formatter():
    handler = settings.LOGGING["handlers"]["console"]
    assert settings.LOGGING["formatters"][handler["formatter"]]["()"] == "dpi.logs.JsonFormatter"
    assert settings.LOGGING["loggers"]["django.db.backends"]["level"] != "DEBUG"


def test_in_process_requests_log_ids_never_traits(cast, planted, captured):
    clients = {who: verified_client(getattr(cast, who)) for who in ("physician", "reception")}
    for url in searches():
        clients[_persona(url)].get(url, HTTP_ACCEPT=_accept(url))
    clients["physician"].post("/patients/", {"q": NAME})
    output = captured.getvalue()
    assert_no_marker(output, "Django's log output")
    records = json_lines(output)
    assert records, "the 404s should have been logged"
    assert all(r["request_id"] for r in records if r["logger"] == "django.request"), records


def test_the_search_form_posts_its_query(cast, planted):
    client = verified_client(cast.physician)
    page = client.get("/patients/").content.decode()
    assert 'method="post" role="search"' in page
    found = client.post("/patients/", {"q": NAME}).content.decode()
    assert f"/patients/{planted.pk}/" in found


def _record(msg, args=(), exc_info=None, name="dpi.test") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)


def test_exception_text_is_dropped_but_its_type_and_stack_kept():
    try:
        raise ValueError(f'invalid input syntax for type date: "{BIRTH}" ({NAME})')
    except ValueError:
        record = _record("Internal Server Error: %s", ("/patients/",), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert_no_marker(json.dumps(line), "a traceback")
    assert line["exc_type"] == "builtins.ValueError"
    assert any("test_exception_text_is_dropped" in frame for frame in line["stack"])


def test_celery_task_payloads_are_dropped():
    from celery.app.trace import LOG_FAILURE, LOG_SUCCESS

    ok = _record(LOG_SUCCESS, ({"id": "t1", "name": "dpi.x", "return_value": {"name": NAME}, "runtime": 0.1,
                                "args": [NIR], "kwargs": {"ipp": IPP}},), name="celery.app.trace")
    failed = _record(LOG_FAILURE, ({"id": "t2", "name": "dpi.x", "exc": f"KeyError('{NAME}')",
                                    "description": "raised unexpected", "traceback": NAME, "args": [NIR],
                                    "kwargs": {}, "internal": False, "einfo": None},), name="celery.app.trace")
    for record in (ok, failed):
        line = JsonFormatter().format(record)
        assert_no_marker(line, "a Celery trace line")
        assert "dpi.x" in json.loads(line)["message"]


def test_urls_and_nir_are_scrubbed_from_any_message():
    spaced = f"{NIR[0]} {NIR[1:3]} {NIR[3:5]} {NIR[5:7]} {NIR[7:10]} {NIR[10:13]} {NIR[13:]}"
    record = _record('"GET /patients/?q=%s HTTP/1.1" 200 / %s', (NAME, spaced))
    line = json.loads(JsonFormatter().format(record))
    assert_no_marker(json.dumps(line), "a runserver line")
    assert spaced not in line["message"]
    assert line["message"].startswith('"GET /patients/?[redacted] HTTP/1.1" 200')


def test_a_queued_task_carries_the_request_id():
    from audit.context import access_context
    from dpi.celery import _carry_request_id

    headers: dict = {}
    with access_context(request_id="req-42"):
        _carry_request_id(headers=headers)
    assert headers == {"dpi_request_id": "req-42"}


@pytest.mark.parametrize("caller_id", ["0b6f2c1e-4d3a-4c8e-9f1a-2b3c4d5e6f70", "0B6F2C1E4D3A4C8E", "ab" * 32])
def test_a_caller_request_id_is_kept_when_opaque(cast, client, caller_id):
    assert client.get("/healthz", HTTP_X_REQUEST_ID=caller_id)["X-Request-ID"] == caller_id


@pytest.mark.parametrize("caller_id", [
    f"{NAME} {NIR}\n",
    f"{NAME}-{NIR.replace(' ', '')}",  # a "plain token" of letters, digits and dashes: a name and an NIR
    "abc-123",  # a word
    f"ab{NIR.replace(' ', '')}cd",  # hexadecimal, but an NIR inside
    "ab" * 33,  # too long
])
def test_any_other_caller_request_id_is_replaced(cast, client, caller_id):
    """The request id goes into every log line and audit event of the request (seen by a reviewer: an
    X-Request-ID holding a name and an NIR came out in the access log)."""
    response = client.get(f"/fhir/Patient/{cast.patient.pk}", HTTP_X_REQUEST_ID=caller_id,
                          HTTP_USER_AGENT=f"agent {NIR}")
    assert response.status_code == 401
    assert response["X-Request-ID"] != caller_id
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    [event] = audit_events(request_id=response["X-Request-ID"])  # the 401's refusal
    assert NIR.replace(" ", "") not in event.user_agent.replace(" ", "") and NAME not in event.request_id


@pytest.mark.parametrize("method, path, query, status, request_id", [
    ("GET", "/fhir/Patient/123", "", "200 OK", "abc123"),
    ("GET", f"/fhir/Patient/{NAME}", "identifier=" + NIR, "404 Not Found", ""),  # masked path, query dropped
    (f"G{NIR}T", "/api/patients/", "q=x", 400, "r-1"),  # a client's method with a NIR in it, an int status
])
def test_the_access_line_is_what_the_general_formatter_writes(method, path, query, status, request_id):
    """gunicorn's access record takes JsonFormatter's short path (issue #18): the same line as the general case."""
    from datetime import timedelta

    from gunicorn.config import Config

    from dpi.logs import GunicornLogger

    config = Config()
    config.set("accesslog", "-")
    logger = GunicornLogger(config)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.access_log.addHandler(handler)
    response = type("Response", (), {"status": status, "sent": 321, "headers": [("X-Request-ID", request_id)]})
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "REMOTE_ADDR": "10.0.0.7"}
    logger.access(response, None, environ, timedelta(milliseconds=12))
    (record,) = records
    short = JsonFormatter().format(record)
    del record._dpi_access
    assert short == JsonFormatter().format(record)
    line = json.loads(short)
    assert line["logger"] == "gunicorn.access" and line["http"]["bytes"] == 321 and line["http"]["duration_ms"] == 12
    assert_no_marker(short, "the access line")
