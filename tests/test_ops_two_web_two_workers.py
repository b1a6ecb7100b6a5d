"""Scale-out on one PostgreSQL and one Redis: two web servers (gunicorn with the project's configuration), two
Celery workers and two beats (a leader and a standby, dpi/beat.py) driven at once.

- Reads and writes go through both web servers concurrently: every access leaves its event and the hash chain
  verifies intact afterwards (``verify_audit``), checkpoints signed by either worker included; one idempotent
  write sent to both servers at once creates one record.
- Detection passes run on both workers at once (two replays of yesterday, incremental passes from beat and by
  hand): every pass succeeds and the snooping is one alert, not one per worker.
- The retention run is started on both workers at once, twice each: each due patient is archived exactly once
  (one removal trace, one archive), no run reports an error.
- Beat: each periodic task is sent once per period although two beats run, one signed checkpoint per send.

Real processes as in production (gunicorn sync workers, Celery prefork), the test database, a scratch Redis.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from access.models import StaffProfile
from audit.detection.models import Alert, DetectionRun
from audit.models import AccessEvent, AuditCheckpoint
from audit.verification import chain_verify
from dpi.api.testing import bearer, make_api_client, request_id
from dpi.models import Observation
from retention.models import ArchivedPatient, RetentionRun
from retention.testing import age, where_is
from tests.detection_support import day_ago, ev, local
from tests.ops_support import (
    ROOT,
    ScratchRedis,
    gunicorn,
    http_get,
    server_env,
    stop_process_group,
    url_of_test_database,
    wait_for,
)
from tests.personas import make_patient
from tests.test_audit_support import fresh_trail

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PERIOD = 2.0  # seconds between two sends of each fast periodic task (tests/fast_beat.py)
BEAT_TASKS = ("audit-chain-seal", "audit-checkpoint-sign", "detection-new-events", "jobs-stale-sweep")
DUE = 6  # patients past their retention period
REQUESTS_PER_THREAD = 6


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _celery(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    out = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "celery", *args, "--loglevel", "INFO"], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _log_lines(path: Path) -> list[dict]:
    lines = []
    for raw in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(raw)
            if isinstance(entry, dict):
                lines.append(entry)
    return lines


def _sends(path: Path) -> list[tuple[str, datetime]]:
    """(entry name, time) of every periodic task this beat sent."""
    out = []
    for entry in _log_lines(path):
        message = entry.get("message", "")
        if message.startswith("Scheduler: Sending due task "):
            out.append((message.split()[4], datetime.fromisoformat(entry["time"])))
    return out


def _post_json(url: str, body: dict, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310 - loopback
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _snooping_yesterday(cast):
    """A physician of another unit opening, at night, the record of a patient with his name and address."""
    cast.other_physician.last_name = "Moreau"
    cast.other_physician.save(update_fields=["last_name"])
    StaffProfile.objects.filter(user=cast.other_physician).update(address="3 place du Marché", postal_code="35000")
    sister = make_patient(birth_name="MOREAU", first_name="Julie", sex="F", address="3 Place du marche",
                          postal_code="35000")
    for minute in (0, 5, 9):
        ev(cast.other_physician, sister, at=local(day_ago(1), 21, minute))
    return sister


def test_two_web_servers_and_two_workers_share_one_database_safely(cast, tmp_path, settings):
    # The whole trail is verified at the end, records included (alert reviews, break-the-glass, archives): the
    # events other tests left behind (their tables are emptied after them, the trail's are append-only) would
    # be named as records deleted. This deployment starts from an empty trail, as a new one does.
    fresh_trail()
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"
    started_at = timezone.now()

    redis = ScratchRedis(tmp_path).start()
    env = server_env(tmp_path, DATABASE_URL=url_of_test_database(), REDIS_URL=redis.url,
                     DPI_ARCHIVE_DIR=str(settings.DPI_ARCHIVE_DIR),
                     DPI_AUDIT_WITNESS_FILE=str(settings.DPI_AUDIT_WITNESS_FILE), DPI_AUDIT_SYSLOG="",
                     DPI_AUDIT_TSA_URL="", DPI_TEST_BEAT_PERIOD=str(PERIOD), DPI_BEAT_LEASE_SECONDS="20")
    processes: dict[str, subprocess.Popen] = {}
    logs = {name: tmp_path / f"{name}.log" for name in ("node_a", "node_b", "beat_1", "beat_2")}
    sender = Celery("sender", broker=redis.url, backend=redis.url)
    try:
        for node in ("node_a", "node_b"):  # each listens on the shared queue and on its own
            processes[node] = _celery(env, logs[node], "-A", "dpi", "worker", "--pool", "prefork", "--concurrency",
                                      "2", "-Q", f"celery,{node}", "-n", f"{node}@%h", "--without-heartbeat",
                                      "--without-gossip", "--without-mingle")
        for beat in ("beat_1", "beat_2"):
            processes[beat] = _celery(env, logs[beat], "-A", "tests.fast_beat", "beat", "--schedule",
                                      str(tmp_path / f"{beat}-schedule"))
        # The data, committed while the processes start (nothing is sent to them before it exists).
        sister = _snooping_yesterday(cast)
        due = [make_patient() for _ in range(DUE)]
        age([p.pk for p in due], last_activity=timezone.now() - timedelta(days=365 * 6))
        _, token = make_api_client()
        with gunicorn(env) as web_a, gunicorn(env) as web_b:
            for node in ("node_a", "node_b"):
                wait_for(lambda node=node: " ready." in logs[node].read_text(), timeout=60, interval=0.3,
                         what=f"worker {node}")

            # Background work on both workers while both web servers serve.
            tasks = [sender.send_task(name, queue=node)
                     for name in ("audit.detection.tasks.detect_replay_yesterday",
                                  "audit.detection.tasks.detect_new_events", "retention.tasks.archive_due",
                                  "retention.tasks.archive_due")
                     for node in ("node_a", "node_b")]

            answers: list[tuple[str, int]] = []
            rids: list[str] = []

            def client(base: str) -> None:
                for i in range(REQUESTS_PER_THREAD):
                    rid = request_id()
                    rids.append(rid)
                    if i % 2:
                        status = _post_json(f"{base}/api/observations/", {
                            "patient": cast.patient.pk, "label": "Glucose", "loinc": "2345-7", "value": f"5.{i}",
                            "unit": "mmol/L", "effective_at": "2026-03-01T08:00:00Z"}, bearer(token, **{
                                "X-Request-ID": rid}))
                    else:
                        path = f"/fhir/Patient/{cast.patient.pk}" if i % 4 else f"/api/patients/{cast.patient.pk}/"
                        status = http_get(base + path, headers=bearer(token, **{"X-Request-ID": rid}),
                                          timeout=30)[0]
                    answers.append((base, status))

            retried: list[int] = []

            def retry(base: str) -> None:  # the same idempotent write sent to both web servers at once
                retried.append(_post_json(f"{base}/api/observations/", {
                    "patient": cast.patient.pk, "label": "Glucose", "loinc": "2345-7", "value": "7.7",
                    "unit": "mmol/L", "effective_at": "2026-03-02T08:00:00Z"}, bearer(token, **{
                        "Idempotency-Key": "multi-node-retry-1"})))

            threads = [threading.Thread(target=client, args=(base,)) for base in (web_a, web_b, web_a, web_b)]
            threads += [threading.Thread(target=retry, args=(base,)) for base in (web_a, web_b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            results = [task.get(timeout=90, propagate=False) for task in tasks]
            # Both beats alive for at least three sends of each periodic task (however slowly they started on a
            # loaded machine), then one more period.
            wait_for(lambda: all(sum(entry == name for entry, _ in _sends(logs["beat_1"]) + _sends(logs["beat_2"]))
                                 >= 3 for name in BEAT_TASKS), timeout=PERIOD * 20, interval=0.5,
                     what="three sends of each periodic task")
            time.sleep(PERIOD)
        # The standby first: the leader's clean stop releases the lease, which a standby would take at once.
        standby = "beat_2" if not _sends(logs["beat_2"]) else "beat_1"
        for beat in (standby, "beat_1" if standby == "beat_2" else "beat_2"):
            stop_process_group(processes.pop(beat))
    finally:
        for process in processes.values():
            stop_process_group(process)
        redis.stop()
        connection.close()

    # Both web servers served reads and writes, and every request left exactly one access event.
    assert {base for base, _ in answers} == {web_a, web_b}
    assert sorted(status for _, status in answers) == [200] * (len(answers) // 2) + [201] * (len(answers) // 2)
    recorded = AccessEvent.objects.filter(request_id__in=rids)
    assert recorded.count() == len(rids) == 4 * REQUESTS_PER_THREAD
    assert set(recorded.values_list("outcome", flat=True)) == {"allowed"}

    # The idempotent write sent to both servers at once created one observation; both got its answer.
    assert retried == [201, 201]
    assert Observation.objects.filter(patient=cast.patient, effective_at__date=date(2026, 3, 2)).count() == 1

    # Every background task succeeded on both workers (no unique-key error, no lock error).
    assert all(task.successful() for task in tasks), results
    for node in ("node_a", "node_b"):
        received = {entry["message"].split("[")[0].removeprefix("Task ") for entry in _log_lines(logs[node])
                    if entry.get("message", "").startswith("Task ") and " received" in entry["message"]}
        assert {"retention.tasks.archive_due", "audit.detection.tasks.detect_replay_yesterday"} <= received, node

    # Detection: one alert for the snooping, although it was analysed on both workers several times.
    alerts = Alert.objects.filter(user=cast.other_physician, patient_id=sister.pk, day=day_ago(1))
    assert alerts.count() == 1
    assert DetectionRun.objects.filter(kind="replay").count() == 2

    # Retention: every due patient archived exactly once; the four runs either archived or skipped.
    runs = list(RetentionRun.objects.filter(started_at__gte=started_at))
    assert len(runs) == 4 and all(run.errors == 0 for run in runs)
    assert sum(run.archived for run in runs) == DUE
    assert {run.status for run in runs} <= {"finished", "skipped"}
    assert ArchivedPatient.objects.filter(patient_id__in=[p.pk for p in due]).count() == DUE
    for patient in due:
        assert where_is(patient.pk) == {"archived"}
        removals = AccessEvent.objects.filter(patient_id=patient.pk, basis="system:retention",
                                              details__step="remove")
        assert removals.count() == 1

    # Beat: two beats ran, one sent; each task once per period (no two sends of one task within half a period).
    sends = _sends(logs["beat_1"]) + _sends(logs["beat_2"])
    assert sends and not _sends(logs[standby])
    for name in BEAT_TASKS:
        times = sorted(at for entry, at in sends if entry == name)
        assert len(times) >= 3, (name, times)
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= PERIOD / 2, (name, gaps)
    # Each task sent ran once: no task id received twice (by both workers), and never more checkpoint runs than
    # sends, one signed checkpoint per run (the last sends may still be queued when the workers stop).
    received = [entry["message"].split("[")[1].split("]")[0] for node in ("node_a", "node_b")
                for entry in _log_lines(logs[node]) if " received" in entry.get("message", "")]
    assert len(received) == len(set(received))
    checkpoint_runs = sum(1 for node in ("node_a", "node_b") for entry in _log_lines(logs[node])
                          if entry.get("message", "").startswith("Task audit.tasks.checkpoint_sign[")
                          and " succeeded" in entry["message"])
    assert 3 <= checkpoint_runs <= sum(1 for entry, _ in sends if entry == "audit-checkpoint-sign")
    assert AuditCheckpoint.objects.filter(kind="periodic", signed_at__gte=started_at).count() == checkpoint_runs

    # The chain, written by two web servers and two workers at once, verifies intact.
    run = chain_verify(witness_file=settings.DPI_AUDIT_WITNESS_FILE, alert=False)
    assert run.ok, run.message
    assert run.events_checked >= len(rids)
