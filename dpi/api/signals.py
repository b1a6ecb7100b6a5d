"""A change of an API client or token (issued, narrowed, revoked, client switched off, by a service or the admin
site) moves the credentials generation, so that no worker keeps a cached verified token that says otherwise
(access.authn.credentials, dpi.api.authentication)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from access.authn.credentials import credentials_changed
from dpi.api.models import ApiClient, ApiToken


@receiver([post_save, post_delete], sender=ApiClient)
@receiver([post_save, post_delete], sender=ApiToken)
def _credential_changed(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or (update_fields is not None and set(update_fields) <= {"last_used_at"}):
        return
    credentials_changed()
