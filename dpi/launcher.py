"""`make run`: start the whole system in the foreground, stop it all with Ctrl-C.

1. embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset (their URLs are passed on);
2. migrate, collect static files, then seed synthetic demo data on first run, printing the demo accounts
   generated for this install (never with DPI_PRODUCTION=1; `manage.py demo_accounts` prints them again);
3. gunicorn (web), a Celery worker, Celery beat and the HL7 v2 listener (dpi.hl7) as child processes.

It refuses to listen beyond the loopback interface (DPI_BIND) while demo accounts can sign in, and, with
DPI_PRODUCTION, to open the HL7 listener beyond the loopback without an explicit DPI_HL7_ALLOWED_NETWORKS; it
stops the embedded servers it started when it ends, whatever the reason.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def is_loopback(bind: str) -> bool:
    """``127.0.0.1:8000``, ``[::1]:8000``, ``localhost:8000``, ``unix:/path``: reachable from this machine only."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0] if ":" in bind else bind
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _production() -> bool:
    return os.environ.get("DPI_PRODUCTION", "").lower() in {"1", "true", "yes", "on"}


def web_command(py: str, bind: str, workers: str | None = None) -> list[str]:
    """gunicorn with the project's configuration: JSON logs, no query string in the access log (dpi/logs.py)."""
    return [
        py,
        "-m",
        "gunicorn",
        "-c",
        "python:dpi.gunicorn_conf",
        "dpi.wsgi:application",
        "--bind",
        bind,
        "--workers",
        workers or os.environ.get("DPI_WEB_WORKERS", "3"),
    ]


def main() -> int:
    os.chdir(BASE_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    from dpi import embedded

    try:
        return _run(embedded)
    except subprocess.CalledProcessError as exc:
        print(f"dpi: {' '.join(exc.cmd[1:3])} failed (exit {exc.returncode}); stopping.", flush=True)
        return exc.returncode or 1
    finally:
        stopped = embedded.stop_started()
        if stopped:
            print(f"embedded {' and '.join(stopped)} stopped.", flush=True)


def _run(embedded) -> int:
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.postgres_url()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = embedded.redis_url()
    py = sys.executable
    manage = [py, "manage.py"]
    bind = os.environ.get("DPI_BIND", "127.0.0.1:8000")
    subprocess.run([*manage, "migrate", "--noinput"], check=True)  # noqa: S603
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], check=True)  # noqa: S603
    if _production():
        print("DPI_PRODUCTION=1: no demo data (the seed and demo accounts are refused in production).", flush=True)
    else:
        subprocess.run(
            [*manage, "seed", "--if-empty", "--patients", os.environ.get("DPI_DEMO_PATIENTS", "300"),  # noqa: S603
             "--seed", os.environ.get("DPI_DEMO_SEED", "1")],
            check=True,
        )
    demo_count = int(
        subprocess.run(
            [*manage, "demo_accounts", "--count"], check=True, capture_output=True, text=True  # noqa: S603
        ).stdout.strip().splitlines()[-1]
    )
    if demo_count and not is_loopback(bind):
        print(
            f"dpi: refusing to listen on {bind}: {demo_count} demo accounts can sign in, and their secrets are "
            "demo secrets. Listen on 127.0.0.1 (DPI_BIND), or disable them first: "
            f"{py} manage.py demo_accounts --disable",
            flush=True,
        )
        return 2
    from dpi.hl7.mllp import startup_refusal

    hl7_refusal = startup_refusal(os.environ.get("DPI_HL7_HOST", "127.0.0.1"), production=_production(),
                                  allowlist_explicit=bool(os.environ.get("DPI_HL7_ALLOWED_NETWORKS", "").strip()))
    if hl7_refusal:
        print(f"dpi: {hl7_refusal}", flush=True)
        return 2
    if demo_count:
        print(f"Demo accounts (synthetic data only): `{py} manage.py demo_accounts` prints them.", flush=True)
    var = Path(os.environ.get("DPI_VAR_DIR", BASE_DIR / "var"))
    var.mkdir(exist_ok=True)
    procs = {
        "web": web_command(py, bind),
        "worker": [
            py,
            "-m",
            "celery",
            "-A",
            "dpi",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--hostname",
            "dpi-worker@%h",
        ],
        "beat": [
            py,
            "-m",
            "celery",
            "-A",
            "dpi",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(var / "celerybeat-schedule"),
        ],
        # HL7 v2 listener (dpi.hl7): ADT and results over MLLP on DPI_HL7_HOST:DPI_HL7_PORT (docs/hl7.md).
        "hl7": [py, "manage.py", "hl7_listener"],
    }
    children = {name: subprocess.Popen(cmd) for name, cmd in procs.items()}  # noqa: S603
    print(f"\ndpi is running on http://{bind}/  (Ctrl-C stops web, worker, beat and hl7)\n", flush=True)

    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in children.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping", flush=True)
                code = proc.returncode or 1
                stopping = True
        time.sleep(0.5)
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 20
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
    print("dpi stopped.", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
