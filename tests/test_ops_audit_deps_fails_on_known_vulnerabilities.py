"""``make audit-deps`` (.ci/audit_deps.py): a known vulnerability in a pinned package fails (exit 1); an advisory
database that cannot be reached only warns (exit 0), so CI is not failed by the network. pip-audit is replaced by
a stand-in that answers as pip-audit does."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

VULNERABLE = {"dependencies": [
    {"name": "django", "version": "5.2.0", "vulns": [
        {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-1"], "fix_versions": ["5.2.99"], "description": "x"}]},
    {"name": "celery", "version": "5.7.0", "vulns": []}], "fixes": []}
CLEAN = {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": []}], "fixes": []}
NOTHING_AUDITED = {"dependencies": [{"name": "django", "skip_reason": "Dependency not found on PyPI"}], "fixes": []}
NETWORK_ERROR = ("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): "
                 "Max retries exceeded")


def _fake_pip_audit(tmp_path, *, report=None, stderr="", status=0) -> Path:
    script = tmp_path / "pip-audit"
    script.write_text(f"""#!{sys.executable}
import sys
args = sys.argv
report = {json.dumps(json.dumps(report)) if report is not None else None!r}
if report is not None:
    open(args[args.index("--output") + 1], "w").write({json.dumps(report)!r})
sys.stderr.write({stderr!r})
sys.exit({status})
""")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(("report", "stderr", "status", "expected", "says"), [
    (VULNERABLE, "", 1, 1, "VULNERABLE django==5.2.0: PYSEC-2099-1"),
    (CLEAN, "", 0, 0, "no known vulnerability"),
    (NOTHING_AUDITED, "", 0, 0, "WARNING: audit-deps: the vulnerability database knew none"),
    (None, NETWORK_ERROR, 1, 0, "WARNING: audit-deps: the vulnerability database could not be reached"),
    (None, "Traceback: KeyError", 1, 2, "pip-audit failed without a report"),
])
def test_audit_deps_exit_status(tmp_path, report, stderr, status, expected, says):
    fake = _fake_pip_audit(tmp_path, report=report, stderr=stderr, status=status)
    result = subprocess.run([sys.executable, str(ROOT / ".ci" / "audit_deps.py"), str(ROOT / "requirements.lock")],
                            env={"PIP_AUDIT": str(fake), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == expected, result.stderr
    assert says in result.stdout + result.stderr


def test_ci_runs_the_audit_before_the_tests():
    run = (ROOT / ".ci" / "run").read_text()
    assert run.index("\nmake audit-deps\n") < run.index("\nmake test")
