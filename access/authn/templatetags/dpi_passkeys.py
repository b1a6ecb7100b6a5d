"""``{% load dpi_passkeys %}``: whether the signed-in user has a passkey, and their passkeys."""

from django import template

from access.authn import passkeys

register = template.Library()


@register.filter
def has_passkey(user) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and passkeys.has_passkey(user)


@register.filter
def passkeys_of(user) -> list:
    return passkeys.passkeys_of(user) if getattr(user, "is_authenticated", False) else []
