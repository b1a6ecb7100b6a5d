"""Nothing left behind (issue #22, item 8): a test run without DATABASE_URL / REDIS_URL starts embedded
PostgreSQL and Redis, and stops them when it ends, even once their folder has been deleted; `manage.py` does the
same. Runs the suite's real start/stop path in a subprocess on a scratch folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent

# A quick test of the suite itself: the session still starts both servers (settings) and creates the test
# database (the session fixture of tests/conftest.py), then must stop both at the end.
TRIVIAL_TEST = "tests/test_docker_compose_matches_settings.py::test_services_and_health_checks"


def _processes_under(folder: Path) -> list[str]:
    """Processes (PostgreSQL, redis-server) whose command line or files point into ``folder``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "name"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if str(folder) in cmd and ("postgres" in cmd or "redis" in cmd):
                found.append(f"{proc.info['pid']} {cmd}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DPI_TEST_DATABASE_NAME"}}
    env.update({"DPI_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "dpi.settings"})
    env.pop("XDG_RUNTIME_DIR", None)  # pgserver keeps its lock under var/run then
    return env


@pytest.fixture
def var(tmp_path):
    # Embedded PostgreSQL runs as an unprivileged user when tests run as root: the folder must be reachable.
    folder = Path(os.path.realpath(tmp_path)) / "var"
    folder.mkdir()
    tmp_path.chmod(0o755)
    yield folder
    for line in _processes_under(folder):  # a failed run must not leave its servers behind either
        try:
            psutil.Process(int(line.split()[0])).kill()
        except psutil.NoSuchProcess:
            pass


def test_a_test_run_and_manage_py_stop_the_embedded_services_they_start(var):
    env = _env(var)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TRIVIAL_TEST],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "embedded postgres and redis stopped." in output, output[-4000:]
    assert _processes_under(var) == [], output[-2000:]

    # manage.py: the same, including after the folder of a running Redis was deleted meanwhile.
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "import shutil; from django.db import connection; from django.core.cache import cache; "
         "connection.cursor().execute('SELECT 1'); cache.set('x', 1); "
         "shutil.rmtree(r'%s', ignore_errors=True)" % (var / "redis")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "started embedded PostgreSQL" in output and "started embedded Redis" in output, output[-4000:]
    assert _processes_under(var) == [], output[-2000:]
