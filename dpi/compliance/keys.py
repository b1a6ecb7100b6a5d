"""The keyring's status: versions per purpose, what each protects, and what still depends on old versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpi import crypto

PURPOSE_USES = {
    "data": "live data: clinical free text, documents, INS/NIR and social security numbers (AES-256-GCM per column)",
    "blind_index": "HMAC-SHA256 search index of INS numbers (exact search without decrypting)",
    "archive": "wraps the per-archive keys of records moved to the archive (retention)",
    "backup": "encrypts database backups (manage.py backup); never used for live data",
    "audit_signing": "Ed25519 signatures of audit-chain checkpoints",
}


@dataclass
class PurposeStatus:
    purpose: str
    current: int
    versions: list[int]
    protects: str
    stale_rows: dict[str, int] = field(default_factory=dict)  # "table.column" -> rows not under the current version
    backups_by_version: dict[int, int] = field(default_factory=dict)  # key version -> backups needing it

    @property
    def stale_total(self) -> int:
        return sum(self.stale_rows.values())


def keyring_status(*, backup_dir: Path | None = None) -> list[PurposeStatus]:
    """One entry per purpose. ``data``: rows still under an older version (``rotate_keys --no-new-key``
    finishes them). ``backup`` and ``data``: how many kept backups need each version to be restored."""
    from dpi.compliance import backups
    from dpi.management.commands.rotate_keys import count_stale, encrypted_columns

    ring = crypto.keyring()
    out = {p: PurposeStatus(p, ring[p].current, sorted(ring[p].keys), PURPOSE_USES[p]) for p in crypto.PURPOSES}
    data = out["data"]
    for model, fld in encrypted_columns():
        data.stale_rows[f"{model._meta.db_table}.{fld.column}"] = count_stale(model, fld, data.current)
    for path in backups.backups_list(backup_dir):
        try:
            manifest: dict[str, Any] = backups.manifest_read(path)
        except backups.BackupRejected:
            continue
        for purpose in ("backup", "data"):
            version = manifest["key_version"] if purpose == "backup" else manifest["keyring_current"]["data"]
            counts = out[purpose].backups_by_version
            counts[version] = counts.get(version, 0) + 1
    return list(out.values())
