"""`make run` (dpi.launcher): migrates, seeds demo data, serves a login page and its static files (the
stylesheet, the page script, the admin's and Swagger UI's scripts), a Celery worker answers a ping, and Ctrl-C
(SIGINT) stops web, worker and beat cleanly.

Runs the launcher against its own scratch database on the same server, never the developer's data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
# Per test database name, so that several checkouts sharing one PostgreSQL server never collide.
DB = (os.environ.get("DPI_TEST_DATABASE_NAME") or "test_dpi") + "_launcher"


def _admin_conn():
    db = settings.DATABASES["default"]
    kw = {
        k: v
        for k, v in {"user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"], "port": db["PORT"]}.items()
        if v
    }
    return psycopg.connect(dbname="postgres", autocommit=True, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STATIC_FILES = {
    "dpi.css": "text/css",
    "dpi.js": "text/javascript",
    "admin/js/autocomplete.js": "text/javascript",
    "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js": "text/javascript",
}


def _assert_static_files_served(base: str, login_page: str, manifest_path: Path) -> None:
    """The pages link hashed names; gunicorn answers each with 200, its content type, gzip and a long cache."""
    manifest = json.loads(manifest_path.read_text())["paths"]
    for name, content_type in STATIC_FILES.items():
        hashed = manifest[name]
        if name in ("dpi.css", "dpi.js"):
            assert f"/static/{hashed}" in login_page, f"the login page does not link {hashed}"
        req = urllib.request.Request(f"{base}/static/{hashed}", headers={"Accept-Encoding": "gzip"})  # noqa: S310
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback only
            assert r.status == 200, name
            assert r.headers["Content-Type"].startswith(content_type), (name, r.headers["Content-Type"])
            assert r.headers.get("Content-Encoding") == "gzip", name
            assert "immutable" in r.headers["Cache-Control"], (name, r.headers["Cache-Control"])
            assert len(r.read()) > 100, name


def _assert_hl7_listener_answers(port: int) -> None:
    """The HL7 v2 listener (dpi.hl7) is one of the launched processes: an A28 over MLLP gets its AA."""
    from dpi.hl7 import testing as hl7

    for _ in range(60):
        try:
            client = hl7.MllpClient("127.0.0.1", port, timeout=30)
            break
        except OSError:
            time.sleep(0.5)
    else:
        raise AssertionError("the HL7 listener does not accept connections")
    try:
        answer = client.send(hl7.adt("A28", "LAUNCH1"))
    finally:
        client.close()
    assert hl7.ack_fields(answer)["code"] == "AA", answer


@pytest.mark.slow
def test_launcher_serves_login_and_worker_then_stops_on_ctrl_c(tmp_path):
    with _admin_conn() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    url = urlparse(os.environ["DATABASE_URL"])
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": urlunparse(url._replace(path="/" + DB)),
            "DPI_BIND": f"127.0.0.1:{_free_port()}",
            "DPI_HL7_PORT": str(_free_port()),
            "DPI_DEMO_PATIENTS": "20",
            "DPI_WEB_WORKERS": "1",
            "DPI_VAR_DIR": str(tmp_path),
            "DPI_KEYRING_FILE": str(settings.DPI_KEYRING_FILE),
        }
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("PYTEST_VERSION", None)  # the launcher serves what users get: hashed, compressed static files
    log_path = tmp_path / "launcher.log"
    # Children write in append mode; the test reads through its own handle (never moving their offset).
    log = open(log_path, "a")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpi.launcher"],
        cwd=ROOT,
        env=env,
        stdout=log,  # noqa: S603
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        login = f"http://{env['DPI_BIND']}/accounts/login/"
        body = None
        for _ in range(240):
            try:
                with urllib.request.urlopen(login, timeout=2) as r:  # noqa: S310 - loopback only
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "no login page; launcher log:\n" + log_path.read_text()[-3000:]
        assert 'name="password"' in body or 'name="auth-password"' in body or "password" in body.lower()
        _assert_static_files_served(f"http://{env['DPI_BIND']}", body, tmp_path / "static" / "staticfiles.json")
        from dpi.celery import app

        replies = []
        for _ in range(60):
            replies = app.control.ping(timeout=1.0)
            if any(name.startswith("dpi-worker@") for r in replies for name in r):
                break
            time.sleep(0.5)
        assert any(name.startswith("dpi-worker@") for r in replies for name in r), replies
        output = log_path.read_text()
        # The demo accounts generated for this install are printed on first run, and kept under var/secrets.
        accounts = json.loads((tmp_path / "secrets" / "demo_accounts.json").read_text())
        assert f"password={accounts['demo.physician']['password']}" in output and "TOTP secret=" in output
        _assert_hl7_listener_answers(int(env["DPI_HL7_PORT"]))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    try:
        assert code == 0
        assert "dpi stopped." in log_path.read_text()
        # Demo accounts exist: the launcher refuses to listen beyond the loopback interface (issue #13, 10).
        env["DPI_BIND"] = f"0.0.0.0:{_free_port()}"
        refused = subprocess.run(
            [sys.executable, "-m", "dpi.launcher"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
        assert "refusing to listen on 0.0.0.0" in refused.stdout and "demo_accounts --disable" in refused.stdout
    finally:
        with _admin_conn() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    # no child left behind
    out = subprocess.run(["pgrep", "-f", env["DPI_BIND"]], capture_output=True, text=True)  # noqa: S603,S607
    assert out.stdout.strip() == ""
