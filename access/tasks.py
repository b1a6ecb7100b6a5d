"""Celery tasks of access control (thin: they call services)."""

from celery import shared_task

from audit.context import access_context


@shared_task
def care_grants_sweep() -> int:
    """Remove obsolete access permissions (expired care relationships)."""
    from access.care_team import care_grants_sweep as sweep

    with access_context(channel="worker"):
        return sweep()


@shared_task(soft_time_limit=3600, time_limit=3600 + 120)  # full recompute: longer than the 10-minute default
def care_grants_rebuild() -> tuple[int, int]:
    """Recompute every care grant from encounters, appointments and memberships (catches staff changes)."""
    from access.care_team import care_grants_recompute

    with access_context(channel="worker"):
        return care_grants_recompute(patient_ids=None)


@shared_task
def review_remind() -> int:
    """Remind the reviewers of the open authorization review of what is still pending."""
    from access import services
    from access.models import AccessReviewCampaign

    with access_context(channel="worker"):
        campaigns = AccessReviewCampaign.objects.filter(closed_at__isnull=True)
        return sum(services.review_remind(campaign=c) for c in campaigns)
