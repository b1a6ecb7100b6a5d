"""System checks: the authentication rules only hold if the middleware and backend are in place."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

REQUIRED_AFTER_OTP = ["access.authn.middleware.SessionTimeoutMiddleware",
                      "access.authn.middleware.AuthenticationStepsMiddleware"]
HEADERS = "access.authn.middleware.SecurityHeadersMiddleware"
OTP = "django_otp.middleware.OTPMiddleware"
BACKEND = "access.authn.backends.ThrottledModelBackend"


@register(Tags.security)
def authn_configuration(app_configs, **kwargs):
    errors = []
    mw = list(settings.MIDDLEWARE)
    if OTP not in mw:
        errors.append(Error(f"{OTP} is missing from MIDDLEWARE", id="authn.E001"))
    else:
        for i, name in enumerate(REQUIRED_AFTER_OTP):
            if name not in mw or mw.index(name) != mw.index(OTP) + 1 + i:
                errors.append(Error(f"{name} must come right after {OTP} (in this order: "
                                    f"{', '.join(REQUIRED_AFTER_OTP)})", id="authn.E002"))
    if HEADERS not in mw:
        errors.append(Error(f"{HEADERS} is missing from MIDDLEWARE", id="authn.E003"))
    if "django.contrib.auth.backends.ModelBackend" in settings.AUTHENTICATION_BACKENDS:
        errors.append(Error("ModelBackend bypasses the attempt limits: use " + BACKEND, id="authn.E004"))
    if BACKEND not in settings.AUTHENTICATION_BACKENDS:
        errors.append(Error(f"{BACKEND} is missing from AUTHENTICATION_BACKENDS", id="authn.E005"))
    hashers = list(settings.PASSWORD_HASHERS)
    if not hashers or hashers[0] != "django.contrib.auth.hashers.Argon2PasswordHasher":
        errors.append(Error("passwords must be hashed with Argon2id first", id="authn.E006"))
    return errors
