"""Browser pages on the real server (issue #22, item 9): p95 time of each journey page, and the weight of the
static assets each page loads.

What `make run` starts (``python -m dpi.launcher``: gunicorn with 2 workers, Celery worker and beat, WhiteNoise
for static files) on a scratch database seeded with the demo (``DPI_BENCH_UI_PATIENTS`` patients, a month of
access history), signed into over HTTP with the demo accounts generated for that install (password, then the
one-time code), as each journey of tests/test_e2e_journeys_on_the_real_server.py does. Pages are requested
``DPI_BENCH_UI_ROUNDS`` times each, interleaved. Baseline: ``/healthz`` on the same server in the same run.
Static weight: every ``/static/`` file a page links, fetched as a browser does (gzip), bytes on the wire and
uncompressed; browsers keep them a year afterwards (hashed names, ``immutable``).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from bench.common import admin_connection, free_port

ROOT = Path(__file__).resolve().parent.parent
N_PATIENTS = int(os.environ.get("DPI_BENCH_UI_PATIENTS", "300"))  # `make run` seeds 300 demo patients
ROUNDS = int(os.environ.get("DPI_BENCH_UI_ROUNDS", "30"))
GOAL_MS = 300
DB = "dpi_bench_ui"


def _totp(key_hex: str, step: int) -> str:
    import hashlib
    import hmac
    import struct

    digest = hmac.new(bytes.fromhex(key_hex), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


class Browser:
    """A requests session that signs in like a person (password, then the one-time code)."""

    used_steps: dict[str, int] = {}

    def __init__(self, base: str):
        import requests

        self.base = base
        self.http = requests.Session()

    def _csrf(self, html: str) -> str:
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    def sign_in(self, username: str, account: dict[str, str]) -> None:
        page = self.http.get(self.base + "/accounts/login/")
        r = self.http.post(self.base + "/accounts/login/", data={
            "csrfmiddlewaretoken": self._csrf(page.text), "username": username, "password": account["password"],
        }, headers={"Referer": self.base + "/accounts/login/"})
        if 'name="token"' in r.text:
            step = max(int(time.time()) // 30, Browser.used_steps.get(username, -1) + 1)
            Browser.used_steps[username] = step
            r = self.http.post(r.url, data={"csrfmiddlewaretoken": self._csrf(r.text),
                                            "token": _totp(account["totp_key"], step)},
                               headers={"Referer": r.url})
        assert "/accounts/login/" not in r.url, f"{username} could not sign in"

    def get(self, path: str, **kw):
        return self.http.get(self.base + path, **kw)


def _static_weight(base: str, html: str) -> tuple[int, int, int]:
    """(files, bytes on the wire gzip, bytes uncompressed) of the /static/ files a page links."""
    import requests

    urls = sorted(set(re.findall(r'(?:href|src)="(/static/[^"]+)"', html)))
    wire = raw = 0
    for url in urls:
        r = requests.get(base + url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
        assert r.status_code == 200, (url, r.status_code)
        body = r.raw.read(decode_content=False)
        wire += len(body)
        raw += len(r.content) if not body else len(_gunzip(body, r.headers.get("Content-Encoding")))
    return len(urls), wire, raw


def _gunzip(body: bytes, encoding: str | None) -> bytes:
    import gzip

    return gzip.decompress(body) if encoding == "gzip" else body


def main() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    from dpi import settings as s  # noqa: F401  (starts embedded services when URLs are unset)

    base_url = os.environ["DATABASE_URL"]
    with admin_connection(base_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    var = Path(tempfile.mkdtemp(prefix="dpi-bench-ui-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update({
        "DATABASE_URL": urlunparse(urlparse(base_url)._replace(path="/" + DB)),
        "DPI_BIND": f"127.0.0.1:{free_port()}", "DPI_DEMO_PATIENTS": str(N_PATIENTS), "DPI_WEB_WORKERS": "2",
        "DPI_VAR_DIR": str(var), "DPI_CACHE_PREFIX": "dpi-bench-ui",
    })
    log = open(var / "launcher.log", "a")  # noqa: SIM115
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dpi.launcher"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://{env['DPI_BIND']}"
    try:
        import requests

        for _ in range(1200):
            try:
                requests.get(base + "/accounts/login/", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.5)
        startup = time.perf_counter() - t0
        return _measure(base, env, var, startup)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        with admin_connection(base_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


def _measure(base: str, env: dict[str, str], var: Path, startup: float) -> str:
    import psycopg

    accounts = json.loads((var / "secrets" / "demo_accounts.json").read_text())
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        cardio = [r[0] for r in conn.execute(
            "SELECT e.patient_id FROM patients_encounter e JOIN patients_careunit u ON u.id = e.unit_id "
            "WHERE u.code = 'cardio' AND e.end IS NULL").fetchall()]
        alert = conn.execute("SELECT id FROM detection_alert ORDER BY id LIMIT 1").fetchone()
    token = re.search(r"token \(shown once\): (\S+)", subprocess.run(
        [sys.executable, "manage.py", "api_client", "create", "bench-ui", "--scopes", "medical:view"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "dpi.settings"}, capture_output=True, text=True,
        check=True).stdout).group(1)
    people = {"anonymous": Browser(base)}
    for who in ("nurse", "reception", "dpo", "security_officer"):
        people[who] = Browser(base)
        people[who].sign_in(f"demo.{who}", accounts[f"demo.{who}"])
    rng = random.Random(7)
    pages = {
        "baseline: /healthz": ("anonymous", lambda: "/healthz", {}),
        "sign-in page": ("anonymous", lambda: "/accounts/login/", {}),
        "clinician: patient list": ("nurse", lambda: "/patients/", {}),
        "clinician: chart": ("nurse", lambda: f"/patients/{rng.choice(cardio)}/", {}),
        "reception: admin home": ("reception", lambda: "/admin/", {}),
        "reception: register a patient (form)": ("reception", lambda: "/admin/patients/patient/add/", {}),
        "reception: admit (form)": ("reception", lambda: "/admin/patients/encounter/add/", {}),
        "reception: patient autocomplete (XHR)": ("reception", lambda: (
            "/admin/autocomplete/?app_label=patients&model_name=encounter&field_name=patient&term=ma"), {}),
        "DPO: dashboard": ("dpo", lambda: "/dpo/", {}),
        "DPO: alert queue": ("dpo", lambda: "/dpo/queue/", {}),
        "DPO: break-the-glass list": ("dpo", lambda: "/dpo/break-glass/", {}),
        "security officer: /security/": ("security_officer", lambda: "/security/", {}),
        "integrator: /api/docs/": ("anonymous", lambda: "/api/docs/", {}),
        "integrator: /api/schema/ (token)": ("anonymous", lambda: "/api/schema/?format=json",
                                              {"headers": {"Authorization": f"Bearer {token}"}}),
    }
    if alert:
        pages["DPO: one alert"] = ("dpo", lambda: f"/dpo/queue/{alert[0]}/", {})
    html: dict[str, str] = {}
    for name, (who, url, kw) in pages.items():  # warm-up, and every page answers 200
        r = people[who].get(url(), **kw)
        assert r.status_code == 200, (name, r.status_code, r.url)
        html[name] = r.text
    times: dict[str, list[float]] = {k: [] for k in pages}
    for _ in range(ROUNDS):
        for name in rng.sample(list(pages), len(pages)):
            who, url, kw = pages[name]
            t0 = time.perf_counter()
            people[who].get(url(), **kw)
            times[name].append(time.perf_counter() - t0)

    def ms(values: list[float], q: int) -> float:
        return 1000 * (statistics.quantiles(values, n=100)[q - 1] if q < 100 else max(values))

    lines = [
        "## Browser pages on the real server (`bench/bench_ui.py`)",
        "",
        f"`make run`'s launcher (gunicorn 2 workers, Celery worker and beat, WhiteNoise) on a scratch database "
        f"with the demo seed ({N_PATIENTS} patients, a month of access history); started and seeded in "
        f"{startup:.0f} s. Signed in over HTTP with the generated demo accounts; {ROUNDS} requests per page, "
        "interleaved. Static assets: the `/static/` files the page links, gzip as browsers fetch them "
        "(cached a year afterwards: hashed names, `immutable`).",
        "",
        "| page | p50 ms | p95 ms | static files | static on the wire (gzip) | uncompressed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    worst = 0.0
    for name, values in times.items():
        files, wire, raw = _static_weight(base, html[name]) if "<html" in html[name].lower() else (0, 0, 0)
        if not name.startswith("baseline"):
            worst = max(worst, ms(values, 95))
        weight = (f"{files} | {wire / 1024:.0f} kB | {raw / 1024:.0f} kB" if files else "0 | – | –")
        lines.append(f"| {name} | {ms(values, 50):.1f} | {ms(values, 95):.1f} | {weight} |")
    lines += ["", f"Goal: every page under {GOAL_MS} ms at p95 on the real server. Slowest page at p95: "
              f"**{worst:.0f} ms** ({'met' if worst < GOAL_MS else 'NOT met'})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
