from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Retention and archives"

    def ready(self) -> None:
        from audit import verification
        from dpi import jobs
        from retention.selectors import archives_against_trail

        jobs.STALE_HANDLERS["retention"] = _retention_worker_died
        if archives_against_trail not in verification.record_checks:
            verification.record_checks.append(archives_against_trail)


def _retention_worker_died(job) -> None:
    """The worker doing the retention run died: the run it recorded is over (the next run resumes the jobs)."""
    from django.utils import timezone

    from dpi.models import JobRun
    from retention.models import RetentionRun

    if JobRun.objects.filter(kind="retention", status=JobRun.Status.RUNNING).exclude(pk=job.pk).exists():
        return  # another retention worker is alive: its run is the one marked running
    RetentionRun.objects.filter(status=RetentionRun.Status.RUNNING).update(
        status=RetentionRun.Status.FAILED, finished_at=timezone.now(), message="interrupted (worker stopped)")
