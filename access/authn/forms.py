"""Sign-in, one-time code and password forms. Their texts never say whether an account exists."""

from __future__ import annotations

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from access.authn.services import BLOCKED_ATTR

INVALID_LOGIN = _("Incorrect user name or password.")
BLOCKED = _("Too many failed sign-in attempts: sign-in is suspended for a while. Try again later, or call the "
            "service desk.")


class SignInForm(AuthenticationForm):
    error_messages = {"invalid_login": INVALID_LOGIN, "inactive": INVALID_LOGIN, "blocked": BLOCKED}

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                if getattr(self.request, BLOCKED_ATTR, False):
                    raise ValidationError(self.error_messages["blocked"], code="blocked")
                raise ValidationError(self.error_messages["invalid_login"], code="invalid_login")
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class OneTimeCodeForm(forms.Form):
    token = forms.CharField(
        label=_("One-time code"), max_length=32, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True,
                                      "spellcheck": "false"}),
        help_text=_("The 6-digit code of your authenticator app, or one of your backup codes."),
    )


class ForcedPasswordChangeForm(PasswordChangeForm):
    """Django's form (current password, then the new one twice, checked by the CNIL validators) that also
    refuses to keep the same password."""

    def clean(self):
        cleaned = super().clean()
        new = self.cleaned_data.get("new_password2")
        old = self.cleaned_data.get("old_password")
        if new and old and new == old:
            self.add_error("new_password2", ValidationError(_("The new password must differ from the current one."),
                                                            code="password_same"))
        return cleaned
