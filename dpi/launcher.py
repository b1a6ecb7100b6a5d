"""`make run`: start the whole system in the foreground, stop it all with Ctrl-C.

1. embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset (their URLs are passed on);
2. migrate, then seed synthetic demo data on first run (printing the demo accounts);
3. gunicorn (web), a Celery worker, Celery beat and the HL7 v2 listener as child processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


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

    started_embedded = []
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.postgres_url()
        started_embedded.append("postgres")
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = embedded.redis_url()
        started_embedded.append("redis")
    py = sys.executable
    manage = [py, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], check=True)  # noqa: S603
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], check=True)  # noqa: S603
    subprocess.run(
        [
            *manage,
            "seed",
            "--if-empty",
            "--patients",
            os.environ.get("DPI_DEMO_PATIENTS", "300"),  # noqa: S603
            "--seed",
            "1",
        ],
        check=True,
    )
    bind = os.environ.get("DPI_BIND", "127.0.0.1:8000")
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
    if "redis" in started_embedded:
        embedded.redis_stop()
    if "postgres" in started_embedded:
        embedded.postgres_stop()
    print("dpi stopped.", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
