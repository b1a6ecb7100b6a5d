"""Installs the reception site as the project's admin site.

In settings.INSTALLED_APPS, ``dpi.web.apps.ReceptionAdminConfig`` takes the place of ``django.contrib.admin``:
``django.contrib.admin.site`` (served at /admin/ by dpi/urls.py) is then a ``ReceptionAdminSite``, which
accepts only administrative models.
"""

from django.contrib.admin.apps import AdminConfig


class ReceptionAdminConfig(AdminConfig):
    default_site = "dpi.web.admin_site.ReceptionAdminSite"

    def ready(self):
        super().ready()  # autodiscover: other apps' registrations are refused by the site unless administrative
        from django.contrib import admin

        from dpi.web.admin_site import register

        register(admin.site)
