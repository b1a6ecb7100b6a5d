"""French by default, English on request; dates in the French format; the compiled catalogue is complete
and matches its source."""

from __future__ import annotations

import codecs
import gettext
import re
from pathlib import Path

import pytest

from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db

LOCALE = Path(__file__).resolve().parent.parent / "locale"


def test_pages_are_in_french_by_default(cast):
    response = verified_client(cast.nurse).get(f"/patients/{cast.patient.pk}/")
    html = response.content.decode()
    assert '<html lang="fr">' in html
    assert "Se déconnecter" in html and "Rédiger une note" in html
    assert cast.patient.birth_date.strftime("%d/%m/%Y") in html  # dd/mm/yyyy
    assert re.search(r"depuis le \d\d/\d\d/\d{4} \d\d:\d\d", html)  # the open encounter, French date and time


def test_english_when_the_browser_asks_for_it(cast):
    html = verified_client(cast.nurse).get("/patients/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en">' in html and "Sign out" in html


def test_the_language_switch_remembers_the_choice(cast):
    client = verified_client(cast.nurse)
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/patients/"})
    assert response.status_code == 302 and response["Location"] == "/patients/"
    assert "Sign out" in client.get("/patients/").content.decode()


def _unescape(text: str) -> str:
    return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")


def _po_entries(path: Path) -> dict[str, str]:
    """msgid -> msgstr (first plural form) of a .po file, without a third-party parser. A message with a
    context is keyed as the .mo keys it: "context\x04msgid"."""
    entries, key, current = {}, None, None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("#~"):
            continue
        match = re.match(r'^(msgctxt|msgid|msgstr|msgstr\[0\]|msgid_plural|msgstr\[\d\])\s+"(.*)"$', line)
        if match:
            key = match.group(1)
            if key == "msgctxt":
                current = {"msgid": _unescape(match.group(2)) + "\x04", "msgstr": ""}
                continue
            if key == "msgid" and not (current and current["msgid"].endswith("\x04")):
                current = {"msgid": "", "msgstr": ""}
            if key in {"msgid", "msgstr", "msgstr[0]"}:
                field = key.replace("[0]", "")
                current[field] = (current[field] if field == "msgid" else "") + _unescape(match.group(2))
        elif line.startswith('"') and key in {"msgid", "msgstr", "msgstr[0]"}:
            current[key.replace("[0]", "")] += _unescape(line[1:-1])
        elif not line.strip() and current is not None:
            entries[current["msgid"]] = current["msgstr"]
            current, key = None, None
    entries.pop("", None)
    return entries


def test_every_message_has_a_french_translation():
    source = LOCALE / "fr" / "LC_MESSAGES" / "django.po"
    assert "#, fuzzy" not in source.read_text(encoding="utf-8")  # msgmerge's guesses are never kept
    entries = _po_entries(source)
    assert len(entries) > 300
    assert [k for k, v in entries.items() if not v] == []


def test_the_compiled_catalogue_matches_its_source():
    source = _po_entries(LOCALE / "fr" / "LC_MESSAGES" / "django.po")
    with open(LOCALE / "fr" / "LC_MESSAGES" / "django.mo", "rb") as f:
        compiled = gettext.GNUTranslations(f)
    missing = [m for m in source if compiled.gettext(m) == m and source[m] != m and "%(" not in m]
    assert missing == [], "run: manage.py compilemessages -l fr -l en --ignore=.venv --ignore=var"
