"""Authentication routes (access.authn), mounted at /accounts/."""

from django.urls import include, path

from access.authn import passkeys, views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("second-factor/", views.second_factor, name="authn-second-factor"),
    path("second-factor/enrol/", views.enrol, name="authn-enrol"),
    path("second-factor/backup-codes/", views.backup_codes, name="authn-backup-codes"),
    path("second-factor/confirm/", views.fresh_otp, name="authn-fresh-otp"),
    path("password/change/", views.password_change, name="password_change"),
    path("sessions/", views.sessions, name="authn-sessions"),
    path("oidc/login/", views.oidc_login, name="authn-oidc-login"),
    path("oidc/callback/", views.oidc_callback, name="authn-oidc-callback"),
    # Passkeys (WebAuthn) as a second factor: django-otp-webauthn's ceremony, dpi's rules (access.authn.passkeys).
    path("passkeys/", include((passkeys.urlpatterns, "otp_webauthn"))),
]
