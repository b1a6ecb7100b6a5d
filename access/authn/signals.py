"""Reactions to Django's sign-in/sign-out signals and to role changes made elsewhere (admin site).

Signals because the sign-in may happen in code dpi does not own (the admin site's login view, ``force_login``)
and roles are edited by the administration screens: the session clocks must start, and a user whose role
changes must get new sessions (new session key at a privilege change).
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from access.authn import services
from access.authn.credentials import credentials_changed
from access.authn.models import SessionRecord
from access.models import StaffProfile


@receiver(user_logged_in)
def _session_started(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        services.session_started(request, user)


@receiver(user_logged_out)
def _session_ended(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session") and request.session.session_key:
        SessionRecord.objects.filter(session_key=request.session.session_key).delete()


@receiver(pre_save, sender=StaffProfile)
def _remember_role(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    instance._authn_previous_role = (StaffProfile.objects.filter(pk=instance.pk)
                                     .values_list("role", flat=True).first())


@receiver(post_save, sender=StaffProfile)
def _role_changed(sender, instance, created, raw=False, **kwargs):
    previous = getattr(instance, "_authn_previous_role", None)
    if raw or created or previous is None or previous == instance.role:
        return
    # Privilege change: the user's sessions end, the next sign-in gets a fresh key and the new role's rules.
    services.sessions_end_all(instance.user, reason="role_change")


# What a verified credential stands for (dpi.api.authentication caches it): a change of any of these moves the
# credentials generation. A sign-in only stamps last_login, which changes nothing the gate reads.
_ACCOUNT_FIELDS = frozenset({"is_active", "is_superuser", "is_staff", "username"})


@receiver([post_save, post_delete], sender=User)
def _account_changed(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or (update_fields is not None and not _ACCOUNT_FIELDS & set(update_fields)):
        return
    credentials_changed()


@receiver([post_save, post_delete], sender=StaffProfile)
def _profile_changed(sender, instance, raw=False, **kwargs):
    if not raw:
        credentials_changed()


@receiver(m2m_changed, sender=StaffProfile.units.through)
def _profile_units_changed(sender, action, **kwargs):
    if action in {"post_add", "post_remove", "post_clear"}:
        credentials_changed()


@receiver(m2m_changed, sender=User.groups.through)
@receiver(m2m_changed, sender=User.user_permissions.through)
def _account_privileges_changed(sender, action, **kwargs):
    """A group or a model permission is a privilege (``access.gate.holds_privilege``): a cached token must see it."""
    if action in {"post_add", "post_remove", "post_clear"}:
        credentials_changed()
