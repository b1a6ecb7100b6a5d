"""Every periodic task, in one place, with why it runs at that cadence."""

from celery.schedules import crontab
from django.conf import settings

BEAT_SCHEDULE: dict = {
    # Care relationships end at discharge + N days, at a membership's end: remove them within 15 minutes.
    "access-care-grants-sweep": {"task": "access.tasks.care_grants_sweep", "schedule": 15 * 60},
    # Full recompute nightly catches what no event signals (a contract ending, a staff member leaving).
    "access-care-grants-rebuild": {"task": "access.tasks.care_grants_rebuild", "schedule": crontab(hour=2, minute=30)},
    # Nightly encrypted backup at the quietest hour (at most one day of data lost without WAL archiving),
    # after the 02:30 rebuild; keeps DPI_BACKUP_KEEP backups.
    "compliance-backup": {"task": "dpi.compliance.tasks.backup_scheduled", "schedule": crontab(hour=3, minute=15)},
    # Retention periods are counted in days: one run a day archives the records due, finishes approved
    # restores and decided disposals. At 04:30, after the 03:15 backup, so last night's backup still holds the
    # records archived today; a crashed run is resumed by the next one.
    "retention-archive-due": {"task": "retention.tasks.archive_due", "schedule": crontab(hour=4, minute=30)},
    # Idempotency keys live DPI_API_IDEMPOTENCY_HOURS (24 h by default): an hourly sweep keeps the stored
    # (encrypted, possibly identifying) answers at most an hour past that.
    "api-idempotency-sweep": {"task": "dpi.api.tasks.idempotency_sweep", "schedule": 60 * 60},
    # Detection of unusual access: every 5 minutes the DPO hears of a snooping session while it is recent,
    # and each pass only reads the events since the watermark (a few seconds of work).
    "detection-new-events": {"task": "audit.detection.tasks.detect_new_events", "schedule": 5 * 60},
    # Nightly re-analysis of yesterday: full-day volumes and any commit later than the incremental overlap;
    # at 01:30, before the 02:30 care-grant rebuild and the 03:15 backup.
    "detection-replay-yesterday": {
        "task": "audit.detection.tasks.detect_replay_yesterday",
        "schedule": crontab(hour=1, minute=30),
    },
    # Accounts past their end date or unused for DPI_ACCOUNT_INACTIVITY_DAYS: hourly, so an account is
    # disabled within the hour after its last day, and a run missed while the worker was down is caught up.
    "authn-accounts-disable": {"task": "access.authn.tasks.accounts_disable", "schedule": crontab(minute=7)},
    # Sign-in locks end by themselves at their time; every 5 minutes the unlock is traced for the DPO's view
    # and counters of names sprayed by robots are forgotten.
    "authn-login-locks-release": {"task": "access.authn.tasks.login_locks_release", "schedule": 5 * 60},
    # Audit chain: events that committed while another transaction held the chain lock wait in a queue
    # until the next committer chains them; on a quiet system this sweep chains them within a minute.
    "audit-chain-seal": {"task": "audit.tasks.chain_seal", "schedule": 60},
    # Signed checkpoint of the chain head (DPI_AUDIT_CHECKPOINT_SECONDS, 5 min by default): the window in
    # which the database's owner could rewrite recent traces without contradicting a signature. Signed even
    # when nothing new arrived (verify_audit fails when the newest is older than two periods) and written to
    # the witnesses outside the database (file, syslog, RFC 3161).
    "audit-checkpoint-sign": {
        "task": "audit.tasks.checkpoint_sign",
        "schedule": settings.DPI_AUDIT_CHECKPOINT_SECONDS,
    },
    # Monthly partitions of the trail are created three months ahead; daily, so a missed run costs nothing.
    "audit-partitions-ensure": {"task": "audit.tasks.partitions_ensure", "schedule": crontab(hour=0, minute=20)},
    # Full verification of the trail nightly (shown on the DPO dashboard), at 04:00: before the 04:30
    # retention run, which refuses to drop old months while the last verification found the trail broken.
    "audit-chain-verify": {"task": "audit.tasks.chain_verify", "schedule": crontab(hour=4, minute=0)},
    # The yearly authorization review: every Monday at 09:00 the reviewers hear what is still pending, so a
    # campaign does not stall unnoticed until its due date.
    "access-review-remind": {
        "task": "access.tasks.review_remind",
        "schedule": crontab(hour=9, minute=0, day_of_week=1),
    },
    # Long runs whose worker died (no heartbeat for DPI_JOB_STALE_SECONDS) are marked failed: every minute, so
    # the DPO's and IT's views never show "running" for a run nobody is doing for more than a few minutes.
    "jobs-stale-sweep": {"task": "dpi.tasks.stale_runs_sweep", "schedule": 60},
}
