"""Password rules of the CNIL recommendation on passwords (deliberation 2022-100).

Strength is an entropy, computed as the CNIL does: length x log2(size of the alphabet the character
classes used give). Classes: digits (10), lower case (26), upper case (26), special characters (37, the
CNIL's count). A passphrase (words separated by spaces or hyphens) counts words x log2(dictionary size).
See docs/security.md for the exact rule and its source.
"""

from __future__ import annotations

import gzip
import math
import re
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

CLASS_SIZES = {"digits": 10, "lower": 26, "upper": 26, "special": 37}
# The CNIL examples: a 7-word passphrase reaches 80 bits, i.e. a dictionary of about 2^(80/7) = 2,750 words.
PASSPHRASE_DICTIONARY_SIZE = 2750
PASSPHRASE_MIN_WORD_LENGTH = 3


def character_classes(password: str) -> set[str]:
    classes = set()
    for ch in password:
        if ch.isdigit():
            classes.add("digits")
        elif ch.isalpha() and ch.islower():
            classes.add("lower")
        elif ch.isalpha() and ch.isupper():
            classes.add("upper")
        else:
            classes.add("special")
    return classes


def passphrase_words(password: str) -> list[str]:
    words = [w for w in re.split(r"[\s\-_.]+", password.strip()) if w]
    return words if len(words) >= 2 and all(len(w) >= PASSPHRASE_MIN_WORD_LENGTH for w in words) else []


def entropy_bits(password: str) -> float:
    """max(character entropy, passphrase entropy), in bits, rounded as the CNIL tables do (to 1 bit)."""
    alphabet = sum(CLASS_SIZES[c] for c in character_classes(password))
    chars = len(password) * math.log2(alphabet) if alphabet else 0.0
    words = passphrase_words(password)
    phrase = len(words) * math.log2(PASSPHRASE_DICTIONARY_SIZE) if words else 0.0
    return round(max(chars, phrase))


class CnilEntropyValidator:
    def __init__(self, min_bits: int | None = None):
        self.min_bits = min_bits

    @property
    def required(self) -> int:
        return self.min_bits if self.min_bits is not None else settings.DPI_PASSWORD_MIN_ENTROPY

    def validate(self, password: str, user=None) -> None:
        bits = entropy_bits(password)
        if bits < self.required:
            raise ValidationError(
                _("This password is too weak (%(bits)d bits; at least %(min)d required). Use 12 characters "
                  "mixing upper case, lower case, digits and symbols, or a passphrase of 7 words.")
                % {"bits": bits, "min": self.required},
                code="password_entropy",
            )

    def get_help_text(self) -> str:
        return _("At least %(min)d bits of strength (CNIL): e.g. 12 characters of 4 kinds, or 7 words.") % {
            "min": self.required}


@lru_cache(maxsize=1)
def _blocklist() -> frozenset[str]:
    path = Path(__file__).parent / "data" / "common-passwords.txt.gz"
    entries = set()
    if path.exists():
        with gzip.open(path, "rt") as fh:
            entries = {line.strip().lower() for line in fh if line.strip()}
    from django.contrib.auth.password_validation import CommonPasswordValidator

    entries |= CommonPasswordValidator().passwords
    return frozenset(entries)


def _core(password: str) -> str:
    return re.sub(r"[^a-z]", "", password.lower())


class CommonPasswordBlocklistValidator:
    """Refuse common and breached passwords (Django's 20,000-entry list), also with digits/symbols stripped."""

    def validate(self, password: str, user=None) -> None:
        lowered = password.lower().strip()
        blocked = _blocklist()
        if lowered in blocked or (len(_core(password)) >= 6 and _core(password) in blocked):
            raise ValidationError(_("This password is in a list of common or breached passwords."),
                                  code="password_common")

    def get_help_text(self) -> str:
        return _("It cannot be a common or breached password.")


class UserIdentityValidator:
    """Refuse passwords built from the user's own identity (username, names, e-mail)."""

    def validate(self, password: str, user=None) -> None:
        if user is None:
            return
        lowered = password.lower()
        parts = [getattr(user, "username", ""), getattr(user, "first_name", ""), getattr(user, "last_name", ""),
                 (getattr(user, "email", "") or "").split("@")[0]]
        profile = getattr(user, "staff", None) if getattr(user, "pk", None) else None
        if profile is not None:
            parts.append(profile.birth_name)
        for part in parts:
            part = (part or "").lower()
            if len(part) >= 3 and part in lowered:
                raise ValidationError(_("The password cannot contain your name or username."),
                                      code="password_identity")

    def get_help_text(self) -> str:
        return _("It cannot contain your name or username.")
