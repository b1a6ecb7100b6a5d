"""Behind PgBouncer in transaction mode (docs/deployment.md): server-side cursors can be turned off, prepared
statements stay off, and no code path keeps a session-level advisory lock (the retention run's lock is
transaction-scoped and released when the run ends)."""

import json
import os
import subprocess
import sys

import pytest
from django.db import connection

from retention import services
from tests.ops_support import ROOT

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.db import connection
db = settings.DATABASES
print(json.dumps({"cursors": [db[a]["DISABLE_SERVER_SIDE_CURSORS"] for a in ("default", "audit")],
                  "prepare": connection.get_connection_params().get("prepare_threshold", "unset"),
                  "beat": settings.CELERY_BEAT_SCHEDULER}))
"""


def _probe(**env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    environ.update({"DJANGO_SETTINGS_MODULE": "dpi.settings", **env})
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environ, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_server_side_cursors_can_be_turned_off_and_prepared_statements_stay_off():
    assert _probe()["cursors"] == [False, False]
    out = _probe(DPI_DB_DISABLE_SERVER_SIDE_CURSORS="1")
    assert out["cursors"] == [True, True]
    assert out["prepare"] is None  # psycopg never prepares server-side: nothing for a pooler to lose
    assert out["beat"] == "dpi.beat:LeaderScheduler"


@pytest.mark.django_db(transaction=True)
def test_the_retention_run_leaves_no_session_level_lock_behind(settings, tmp_path):
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"
    assert services.retention_run().status == "finished"
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND classid = 0 "
                    "AND objid = %s AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    [services.ADVISORY_LOCK])
        held = cur.fetchone()[0]
        assert held == 0
    assert services.retention_run().status == "finished"  # the lock was released: the next run is not skipped
