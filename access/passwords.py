"""Password rules of the CNIL recommendation on passwords (deliberation 2022-100 of 21 July 2022).

Strength is an entropy, computed as the CNIL does: length x log2(size of the alphabet that the character
classes used give), rounded to the nearest bit. Classes: digits (10), lower case (26), upper case (26),
special characters (37, the CNIL's count). The CNIL's examples for the 80-bit rule (a password used alone):

* 12 characters of the four classes: 12 x log2(99) = 79.6 -> 80 bits;
* 14 characters of upper case, lower case and digits: 14 x log2(62) = 83.4 bits;
* a passphrase of 7 words: the word count is what counts, 7 x log2(2,750) = 80.0 bits.

Two precautions, stricter than the bare formula (see docs/security.md): repeated characters, runs such as
``abc`` or ``4321`` and repeated blocks count once; a password made only of words (letters) separated by
spaces, hyphens, dots or underscores is measured as a passphrase (11.4 bits a distinct word).
The 50-bit rule (``DPI_PASSWORD_MIN_ENTROPY=50``) is only valid with attempt limits, which dpi always
enforces (``DPI_LOGIN_MAX_FAILURES`` <= 10, access.authn.throttle).
"""

from __future__ import annotations

import gzip
import math
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

CLASS_SIZES = {"digits": 10, "lower": 26, "upper": 26, "special": 37}
# 7 words reach 80 bits in the CNIL's example: a dictionary of at least 2^(80/7) = 2,750 words.
PASSPHRASE_DICTIONARY_SIZE = 2750
PASSPHRASE_MIN_WORDS = 3
CNIL_ALONE_BITS = 80
CNIL_WITH_RESTRICTION_BITS = 50
_SEPARATORS = re.compile(r"[\s\-_.]+")
_LEET = str.maketrans(
    {
        "@": "a",
        "4": "a",
        "0": "o",
        "1": "i",
        "!": "i",
        "3": "e",
        "$": "s",
        "5": "s",
        "7": "t",
        "+": "t",
        "8": "b",
        "9": "g",
        "€": "e",
        "|": "l",
    }
)


def character_class(ch: str) -> str:
    if ch in "0123456789":
        return "digits"
    category = unicodedata.category(ch)
    if category == "Ll":
        return "lower"
    if category == "Lu":
        return "upper"
    return "special"


def character_classes(password: str) -> set[str]:
    return {character_class(ch) for ch in password}


def alphabet_size(password: str) -> int:
    return sum(CLASS_SIZES[c] for c in character_classes(password))


def effective_length(password: str) -> int:
    """Length, where the 3rd and later characters of a run (``aaa``, ``abc``, ``321``) count for nothing
    and a password made of one repeated block counts as that block."""
    n = len(password)
    for period in range(1, n // 2 + 1):
        if n % period == 0 and password == password[:period] * (n // period):
            return effective_length(password[:period])
    count = 0
    for i, ch in enumerate(password):
        if i >= 2:
            a, b, c = ord(password[i - 2]), ord(password[i - 1]), ord(ch)
            step = c - b
            if step in (-1, 0, 1) and b - a == step:
                continue
        count += 1
    return count


def passphrase_words(password: str) -> list[str]:
    """The words of a passphrase (only letters, separated by spaces, hyphens, dots or underscores)."""
    words = [w for w in _SEPARATORS.split(password.strip()) if w]
    if len(words) >= PASSPHRASE_MIN_WORDS and all(w.isalpha() for w in words):
        return words
    return []


def _round(bits: float) -> int:
    """Nearest bit, halves up (the CNIL's tables: 12 characters of 4 classes are "80 bits")."""
    return int(math.floor(bits + 0.5))


def entropy_bits(password: str) -> int:
    """The CNIL strength of a password, in bits."""
    if not password:
        return 0
    alphabet = alphabet_size(password)
    bits = effective_length(password) * math.log2(alphabet)
    words = passphrase_words(password)
    if words:
        distinct = len({w.casefold() for w in words})
        bits = min(bits, distinct * math.log2(PASSPHRASE_DICTIONARY_SIZE))
    return _round(bits)


def required_bits() -> int:
    """``DPI_PASSWORD_MIN_ENTROPY``, never below the CNIL's 50 bits (which needs attempt limits: dpi has them)."""
    return max(int(settings.DPI_PASSWORD_MIN_ENTROPY), CNIL_WITH_RESTRICTION_BITS)


class CnilEntropyValidator:
    """Refuse passwords below the CNIL strength (80 bits alone; 50 bits with attempt limits)."""

    def __init__(self, min_bits: int | None = None):
        self.min_bits = min_bits

    @property
    def required(self) -> int:
        if self.min_bits is not None:
            return max(self.min_bits, CNIL_WITH_RESTRICTION_BITS)
        return required_bits()

    def validate(self, password: str, user: Any = None) -> None:
        bits = entropy_bits(password)
        if bits < self.required:
            raise ValidationError(
                _(
                    "This password is too weak (%(bits)d bits; at least %(min)d required). Use at least 12 "
                    "characters mixing upper case, lower case, digits and symbols, 14 characters of upper case, "
                    "lower case and digits, or a passphrase of 7 words."
                )
                % {"bits": bits, "min": self.required},
                code="password_entropy",
            )

    def get_help_text(self) -> str:
        return _(
            "At least %(min)d bits of strength (CNIL): e.g. 12 characters of 4 kinds, 14 characters of "
            "3 kinds, or 7 words."
        ) % {"min": self.required}


def _fold(text: str) -> str:
    """Lower case without accents."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=1)
def _blocklist() -> frozenset[str]:
    from django.contrib.auth.password_validation import CommonPasswordValidator

    entries = {_fold(p) for p in CommonPasswordValidator().passwords}
    supplement = Path(__file__).parent / "authn" / "data" / "common-passwords-fr.txt"
    for line in supplement.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.add(_fold(line))
    extra = Path(__file__).parent / "authn" / "data" / "common-passwords.txt.gz"
    if extra.exists():  # a larger breached list an establishment may drop in
        with gzip.open(extra, "rt", encoding="utf-8") as fh:
            entries |= {_fold(line.strip()) for line in fh if line.strip()}
    return frozenset(entries)


def password_variants(password: str) -> set[str]:
    """What a common password looks like once its disguises are removed: case, accents, l33t, digits and
    symbols added around or inside it."""
    folded = _fold(password.strip())
    unleet = folded.translate(_LEET)
    variants = {folded, unleet}
    for text in (folded, unleet):
        variants.add(re.sub(r"^[\W\d_]+|[\W\d_]+$", "", text))
        variants.add(re.sub(r"[\W\d_]+", "", text))
        variants.add(re.sub(r"[\W_]+", "", text))
    return {v for v in variants if v}


class CommonPasswordBlocklistValidator:
    """Refuse common and breached passwords (Django's 20,000-entry list, a French supplement, and an optional
    larger list dropped in access/authn/data/common-passwords.txt.gz), also in disguise."""

    def validate(self, password: str, user: Any = None) -> None:
        blocked = _blocklist()
        hit = any(v in blocked and (len(v) >= 3 or v == _fold(password)) for v in password_variants(password))
        if not hit:
            # One or two common words dressed up with digits and symbols ("Soleil#2025#Soleil").
            for text in {_fold(password), _fold(password).translate(_LEET)}:
                words = {w for w in re.split(r"[\W\d_]+", text) if len(w) >= 3}
                if 0 < len(words) <= 2 and all(w in blocked for w in words):
                    hit = True
        if hit:
            raise ValidationError(_("This password is in a list of common or breached passwords."),
                                  code="password_common")

    def get_help_text(self) -> str:
        return _("It cannot be a common or breached password, even with digits or symbols added.")


def identity_parts(user: Any) -> list[str]:
    """Names the password must not be built from: user name and its pieces, names, e-mail, birth name."""
    raw = [
        getattr(user, "username", ""),
        getattr(user, "first_name", ""),
        getattr(user, "last_name", ""),
        (getattr(user, "email", "") or "").split("@")[0],
    ]
    profile = getattr(user, "staff", None) if getattr(user, "pk", None) else None
    if profile is not None:
        raw.append(profile.birth_name)
    parts: set[str] = set()
    for value in raw:
        folded = _fold(value or "")
        if len(folded) >= 3:
            parts.add(folded)
        parts.update(p for p in re.split(r"[\W_\d]+", folded) if len(p) >= 4)
    return sorted(parts, key=len, reverse=True)


class UserIdentityValidator:
    """Refuse passwords built from the user's own identity (user name, names, e-mail, birth name)."""

    def validate(self, password: str, user: Any = None) -> None:
        if user is None:
            return
        folded = _fold(password)
        unleet = folded.translate(_LEET)
        candidates = {folded, unleet, folded[::-1], unleet[::-1]}
        for part in identity_parts(user):
            if any(part in c for c in candidates):
                raise ValidationError(
                    _("The password cannot contain your name or user name."), code="password_identity"
                )

    def get_help_text(self) -> str:
        return _("It cannot contain your name or user name.")
