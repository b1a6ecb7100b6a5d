"""Where the CPU of a request goes inside a real gunicorn worker (issue #18): the launcher's command
(``dpi.launcher.web_command``, ``dpi/gunicorn_conf.py``) with one sync worker, driven over HTTP by one client,
the worker profiled by cProfile on CPU time (``time.process_time``) from its first request to its exit.

    python -m bench.profile_worker [fhir|rest|healthz] [N]

Runs against the database of DATABASE_URL (seeded: ``manage.py seed``) and the Redis of REDIS_URL, creating an
API client on first use. Prints the worker's CPU per request without the profiler (psutil, N requests), then a
profiled run of N requests: top functions by cumulative and by own CPU time. What the test client of
``bench.profile_read`` does not show: gunicorn's accept, HTTP parsing, WSGI environ, access log line and socket.
"""

from __future__ import annotations

import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_load import Client, wait_healthy
from bench.common import free_port

ROOT = Path(__file__).resolve().parent.parent

_CONFIG = '''
import cProfile, os, time
from dpi import gunicorn_conf
from dpi.gunicorn_conf import *  # noqa: F403

_profile = None


def post_worker_init(worker):
    global _profile
    gunicorn_conf.post_worker_init(worker)
    if os.environ.get("DPI_PROFILE_OUT"):
        _profile = cProfile.Profile(time.process_time)
        _profile.enable()


def worker_exit(server, worker):
    if _profile is not None:
        _profile.disable()
        _profile.dump_stats(os.environ["DPI_PROFILE_OUT"])
'''


def _serve(env: dict[str, str], profile_out: str | None) -> tuple[subprocess.Popen, str, int]:
    from dpi.launcher import web_command

    conf_dir = tempfile.mkdtemp(prefix="dpi-profile-worker-")
    Path(conf_dir, "dpi_profile_worker_conf.py").write_text(_CONFIG)
    bind = f"127.0.0.1:{free_port()}"
    cmd = web_command(sys.executable, bind, "1")
    cmd[cmd.index("python:dpi.gunicorn_conf")] = "python:dpi_profile_worker_conf"
    run_env = dict(env, PYTHONPATH=os.pathsep.join([conf_dir, str(ROOT)]), DPI_LOG_LEVEL="WARNING")
    if profile_out:
        run_env["DPI_PROFILE_OUT"] = profile_out
    web = subprocess.Popen(cmd, cwd=ROOT, env=run_env, start_new_session=True)
    host, port = bind.split(":")
    wait_healthy(host, int(port))
    return web, host, int(port)


def main(argv: list[str]) -> int:
    import psutil
    import psycopg

    what = argv[0] if argv else "fhir"
    n = int(argv[1]) if len(argv) > 1 else 2000
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    token = re.search(r"token \(shown once\): (\S+)", subprocess.run(
        [sys.executable, "manage.py", "api_client", "create", f"profile-worker-{int(time.time())}",
         "--rate", "100000000", "--scopes", "administrative:view,administrative:search,medical:view"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout).group(1)
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM patients_patient WHERE confidentiality = 'normal' ORDER BY id LIMIT 100").fetchall()]
    paths = {"fhir": "/fhir/Patient/{}", "rest": "/api/patients/{}/", "healthz": "/healthz"}
    headers = {"Authorization": f"Bearer {token}",
               "Accept": "application/json" if what == "rest" else "application/fhir+json"}
    if what == "healthz":
        headers = {}
    out = str(Path(tempfile.mkdtemp(prefix="dpi-profile-worker-")) / "worker.prof")
    for profiled in (False, True):
        web, host, port = _serve(env, out if profiled else None)
        try:
            client = Client(host, port, headers)
            for i in range(50):  # warm-up
                status, body = client.get(paths[what].format(ids[i % len(ids)]))
                assert status == 200, (status, body[:300])
            worker = psutil.Process(web.pid).children()[0]
            c0 = worker.cpu_times()
            t0 = time.perf_counter()
            for i in range(n):
                client.get(paths[what].format(ids[i % len(ids)]))
            elapsed = time.perf_counter() - t0
            c1 = worker.cpu_times()
            user, system = (c1.user - c0.user) / n * 1000, (c1.system - c0.system) / n * 1000
            label = "profiled" if profiled else "not profiled"
            print(f"{what}, {label}: gunicorn worker CPU {user + system:.3f} ms per request "
                  f"(user {user:.3f}, system {system:.3f}), "
                  f"{n / elapsed:.0f} requests/s, load average {os.getloadavg()[0]:.1f}")
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)
    stats = pstats.Stats(out)
    stats.sort_stats("cumulative").print_stats(70)
    stats.sort_stats("tottime").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
