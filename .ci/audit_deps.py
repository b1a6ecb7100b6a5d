"""``make audit-deps``: every pinned package of requirements.lock checked against the known-vulnerability
database (pip-audit, PyPA; advisories from PyPI / OSV).

Exit status: 1 when a pinned version has a known vulnerability (fix: docs/operations.md, "Dependency
updates"); 0 with a clear WARNING when the advisory database could not be reached or audited nothing, so
that CI on a network without access to it does not fail for that reason alone; 2 on any other error.

pip-audit runs from its own virtualenv (``.venv-audit``), so its dependencies never enter dpi's. Set
``PIP_AUDIT`` to use another pip-audit executable, ``PIP_AUDIT_SERVICE`` to ``osv`` to ask OSV instead of PyPI.
Accepted advisories (with a reason and a date) are listed in ``.ci/pip-audit-ignore.txt``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT_VERSION = "2.10.1"
AUDIT_VENV = ROOT / ".venv-audit"
IGNORE_FILE = ROOT / ".ci" / "pip-audit-ignore.txt"
NETWORK_ERRORS = re.compile(r"ConnectionError|NameResolution|Name or service not known|timed out|Timeout|"
                            r"Temporary failure in name resolution|Connection refused|SSLError|ProxyError|"
                            r"Max retries exceeded|Network is unreachable", re.IGNORECASE)


def warn(message: str) -> int:
    print(f"WARNING: audit-deps: {message}", file=sys.stderr)
    return 0


def pip_audit_executable() -> str | None:
    configured = os.environ.get("PIP_AUDIT")
    if configured:
        return configured
    executable = AUDIT_VENV / "bin" / "pip-audit"
    if executable.exists():
        return str(executable)
    if not (AUDIT_VENV / "bin" / "python").exists():
        venv.create(AUDIT_VENV, with_pip=True)
    result = subprocess.run([str(AUDIT_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",  # noqa: S603
                             f"pip-audit=={PIP_AUDIT_VERSION}"], capture_output=True, text=True)
    if result.returncode != 0 or not executable.exists():
        print(result.stderr[-2000:], file=sys.stderr)
        return None
    return str(executable)


def ignored_ids() -> list[str]:
    if not IGNORE_FILE.exists():
        return []
    ids = []
    for line in IGNORE_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line.split()[0])
    return ids


def main(argv: list[str]) -> int:
    lock = Path(argv[1]) if len(argv) > 1 else ROOT / "requirements.lock"
    executable = pip_audit_executable()
    if executable is None:
        return warn("pip-audit could not be installed (package index unreachable?): dependencies NOT audited")
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        command = [executable, "--requirement", str(lock), "--no-deps", "--disable-pip", "--progress-spinner", "off",
                   "--format", "json", "--output", str(report_path),
                   "--vulnerability-service", os.environ.get("PIP_AUDIT_SERVICE", "pypi")]
        for vuln_id in ignored_ids():
            command += ["--ignore-vuln", vuln_id]
        result = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 - our pip-audit
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            report = None
    if report is None:
        if NETWORK_ERRORS.search(result.stderr):
            return warn("the vulnerability database could not be reached: dependencies NOT audited\n"
                        + result.stderr.strip().splitlines()[-1][:300])
        print(result.stderr[-3000:], file=sys.stderr)
        print("audit-deps: pip-audit failed without a report", file=sys.stderr)
        return 2

    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            print(f"VULNERABLE {dep['name']}=={dep.get('version')}: {vuln.get('id')} "
                  f"({', '.join(vuln.get('aliases') or [])}) fixed in: {fixes}")
    if vulnerable:
        print(f"audit-deps: {len(vulnerable)} pinned package(s) with known vulnerabilities: update them "
              "(docs/operations.md, 'Dependency updates') or record an accepted risk in .ci/pip-audit-ignore.txt",
              file=sys.stderr)
        return 1
    if not audited:
        return warn(f"the vulnerability database knew none of the {len(skipped)} pinned packages "
                    "(unreachable or offline mirror): dependencies NOT audited")
    if skipped:
        warn(f"{len(skipped)} package(s) not audited: " + ", ".join(d["name"] for d in skipped))
    print(f"audit-deps: {len(audited)} pinned packages audited, no known vulnerability")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
