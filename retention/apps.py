from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Retention and archives"

    def ready(self) -> None:
        from dpi import jobs

        jobs.STALE_HANDLERS["retention"] = _retention_worker_died


def _retention_worker_died(job) -> None:
    """The worker doing the retention run died: the run it recorded is over (the next run resumes the jobs)."""
    from django.utils import timezone

    from dpi.models import JobRun
    from retention.models import RetentionRun

    if JobRun.objects.filter(kind="retention", status=JobRun.Status.RUNNING).exclude(pk=job.pk).exists():
        return  # another retention worker is alive: its run is the one marked running
    RetentionRun.objects.filter(status=RetentionRun.Status.RUNNING).update(
        status=RetentionRun.Status.FAILED, finished_at=timezone.now(), message="interrupted (worker stopped)")
