"""The web server's worker class (dpi/gunicorn_worker.py, issue #18): each new connection wakes one idle gunicorn
worker, not all of them, and the worker otherwise behaves as gunicorn's sync worker (serves on every listener,
stops on SIGTERM, is replaced when it dies).

Observed from outside on real processes: the voluntary context switches of each worker (/proc, psutil) while
sequential connections arrive. gunicorn's own sync worker wakes every idle worker for each connection (each
loser fails its accept), so every worker's count grows by at least one per connection."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.ops_support import ROOT, free_port, server_env, stop_process_group, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="EPOLLEXCLUSIVE is Linux's")


def _get(port: int, path: str = "/healthz") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _answers(port: int) -> bool:
    try:
        return _get(port) == 200
    except OSError:
        return False


def _serve(tmp_path: Path, ports: list[int], workers: int, *extra: str) -> subprocess.Popen:
    """gunicorn with the project's configuration, as ``make run`` and the image start it."""
    binds = [arg for port in ports for arg in ("--bind", f"127.0.0.1:{port}")]
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:dpi.gunicorn_conf", "dpi.wsgi:application", *binds,
         "--workers", str(workers), *extra],
        cwd=ROOT, env=server_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_for(lambda: all(_answers(port) for port in ports), timeout=60, interval=0.2, what="gunicorn")
        wait_for(lambda: len(psutil.Process(process.pid).children()) == workers, what="every worker")
    except BaseException:
        stop_process_group(process, grace=5)
        raise
    return process


def _wakeups(workers: list[psutil.Process]) -> dict[int, int]:
    return {w.pid: w.num_ctx_switches().voluntary for w in workers}


def test_the_configured_worker_class_is_the_exclusive_one():
    from dpi import gunicorn_conf

    assert gunicorn_conf.worker_class == "dpi.gunicorn_worker.ExclusiveWakeupSyncWorker"


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["configured", "sync"])
def test_a_connection_wakes_one_idle_worker(tmp_path, worker_class):
    """The contrast with gunicorn's own sync worker proves that the observable sees the difference."""
    port = free_port()
    extra = ["--worker-class", "sync"] if worker_class == "sync" else []
    process = _serve(tmp_path, [port], 3, *extra)
    try:
        workers = psutil.Process(process.pid).children()
        for _ in range(10):  # warm up: the workers' first requests import and cache
            assert _get(port) == 200
        time.sleep(0.2)
        connections = 40
        before = _wakeups(workers)
        for _ in range(connections):
            assert _get(port) == 200
            time.sleep(0.05)  # the worker is back waiting before the next connection arrives
        after = _wakeups(workers)
        woken = sorted(after[pid] - before[pid] for pid in before)
        # The two least woken workers: about 0 when one worker is woken per connection, at least one wake-up per
        # connection each (2 x 40) when every idle worker is.
        if worker_class == "sync":
            assert sum(woken[:2]) >= connections, woken
        else:
            assert sum(woken[:2]) < connections // 2, woken
            assert woken[2] >= connections // 2, woken  # the observable sees the wake-ups of the one that serves
    finally:
        stop_process_group(process, grace=10)


@pytest.mark.slow
def test_serves_every_listener_replaces_a_dead_worker_and_stops_on_sigterm(tmp_path):
    ports = [free_port(), free_port()]  # two listeners: gunicorn's run_for_multiple loop
    process = _serve(tmp_path, ports, 2)
    try:
        for _ in range(5):
            assert [_get(port) for port in ports] == [200, 200]
        victim = psutil.Process(process.pid).children()[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)

        def replaced() -> bool:
            pids = {c.pid for c in psutil.Process(process.pid).children()}
            return len(pids) == 2 and victim.pid not in pids

        wait_for(replaced, timeout=30, what="a new worker")
        for _ in range(10):
            assert [_get(port) for port in ports] == [200, 200]

        workers = psutil.Process(process.pid).children()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        # Idle workers leave at once (their wake-up pipe is in the epoll set), not at the graceful timeout (30 s).
        assert time.monotonic() - started < 5
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        stop_process_group(process, grace=5)
