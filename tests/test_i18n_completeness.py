"""Every user-facing text has its French, the catalogue is up to date with the code, English dates read day
first (en-GB), and ages under one year are given in months or days.

When this fails after you added or changed a text (see docs/ui.md, "Translations"):
    .venv/bin/python manage.py makemessages -l fr -l en --ignore=.venv --ignore=var --ignore=tests --ignore=bench
    # translate each new entry in locale/fr/LC_MESSAGES/django.po, remove every "#, fuzzy" after checking it
    .venv/bin/python manage.py compilemessages -l fr -l en --ignore=.venv --ignore=var
"""

from __future__ import annotations

import gettext
import os
import re
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.template import Context, Template
from django.test import override_settings
from django.utils import formats, timezone, translation

from patients.ages import age_label

BASE = Path(settings.BASE_DIR)
LOCALE = BASE / "locale"
HOWTO = ("run `manage.py makemessages -l fr -l en --ignore=.venv --ignore=var --ignore=tests --ignore=bench`, "
         "translate the entries in locale/fr/LC_MESSAGES/django.po, then `manage.py compilemessages` "
         "(docs/ui.md, Translations)")


def _parse(path: Path) -> dict[tuple[str, str], dict]:
    """(msgctxt, msgid) -> {"msgstr": [...], "fuzzy": bool} of a .po file; obsolete (#~) entries left out."""
    entries: dict[tuple[str, str], dict] = {}
    current: dict | None = None
    key = ""

    def flush():
        if current is not None and "msgid" in current:
            entries[(current.get("msgctxt", ""), current["msgid"])] = current

    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if line.startswith("#~"):
            continue
        if not line:
            flush()
            current, key = None, ""
            continue
        if current is None:
            current = {"fuzzy": False, "msgstr": {}}
        if line.startswith("#,") and "fuzzy" in line:
            current["fuzzy"] = True
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            _append(current, key, _unquote(line))
        else:
            key, _sep, rest = line.partition(" ")
            if key.startswith("msgstr"):
                current["msgstr"][key] = ""
            else:
                current[key] = ""
            _append(current, key, _unquote(rest))
    entries.pop(("", ""), None)
    return entries


def _append(entry: dict, key: str, text: str) -> None:
    if key.startswith("msgstr"):
        entry["msgstr"][key] += text
    else:
        entry[key] += text


def _unquote(text: str) -> str:
    body = text.strip()[1:-1]
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _show(keys) -> str:
    return "\n".join(f"  - {ctx + ' | ' if ctx else ''}{msgid!r}" for ctx, msgid in sorted(keys))


FR_PO = LOCALE / "fr" / "LC_MESSAGES" / "django.po"


def test_every_french_entry_is_translated_and_not_fuzzy():
    entries = _parse(FR_PO)
    assert len(entries) > 300
    untranslated = [k for k, e in entries.items() if not all(v.strip() for v in e["msgstr"].values())]
    fuzzy = [k for k, e in entries.items() if e["fuzzy"]]
    assert not untranslated, f"{len(untranslated)} French entries have no translation:\n{_show(untranslated)}\n{HOWTO}"
    assert not fuzzy, f"{len(fuzzy)} French entries are fuzzy guesses to check:\n{_show(fuzzy)}\n{HOWTO}"


SKIPPED_DIRS = {".git", ".venv", "var", "tests", "bench", "locale", "test-artifacts", "node_modules", "docs"}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """The catalogue as `makemessages` extracts it from the code now, written to a scratch folder.

    makemessages writes next to the sources it reads, so it runs in a scratch tree of links to the sources
    (never touching locale/ of the checkout)."""
    if not shutil.which("xgettext"):
        pytest.fail("GNU gettext (xgettext) is needed: apt-get install gettext")
    tree = tmp_path_factory.mktemp("sources")
    for entry in BASE.iterdir():
        if entry.name not in SKIPPED_DIRS and not entry.name.startswith("."):
            (tree / entry.name).symlink_to(entry)
    (tree / "locale").mkdir()
    cwd = Path.cwd()
    try:
        os.chdir(tree)  # makemessages reads the tree under the current directory
        with override_settings(LOCALE_PATHS=[tree / "locale"]):
            call_command("makemessages", locale=["fr"], symlinks=True, verbosity=0, no_obsolete=True,
                         ignore_patterns=["node_modules"])
    finally:
        os.chdir(cwd)
    return _parse(tree / "locale" / "fr" / "LC_MESSAGES" / "django.po")


def test_the_french_catalogue_has_every_text_of_the_code(extracted):
    entries = _parse(FR_PO)
    missing = set(extracted) - set(entries)
    assert not missing, f"{len(missing)} texts of the code are not in the French catalogue:\n{_show(missing)}\n{HOWTO}"


def test_the_french_catalogue_has_no_text_the_code_dropped(extracted):
    stale = set(_parse(FR_PO)) - set(extracted)
    assert not stale, f"{len(stale)} catalogue entries are no longer in the code:\n{_show(stale)}\n{HOWTO}"


def test_the_english_catalogue_has_every_text_of_the_code(extracted):
    english = _parse(LOCALE / "en" / "LC_MESSAGES" / "django.po")
    missing = set(extracted) - set(english)
    assert not missing, f"{len(missing)} texts are not in the English catalogue:\n{_show(missing)}\n{HOWTO}"


def test_the_compiled_french_catalogue_matches_its_source():
    with open(LOCALE / "fr" / "LC_MESSAGES" / "django.mo", "rb") as f:
        compiled = gettext.GNUTranslations(f)
    stale = []
    for (ctx, msgid), entry in _parse(FR_PO).items():
        if "msgid_plural" in entry:
            continue
        wanted = entry["msgstr"].get("msgstr", "")
        got = compiled.pgettext(ctx, msgid) if ctx else compiled.gettext(msgid)
        if got != wanted:
            stale.append((ctx, msgid))
    assert not stale, f"the .mo is older than the .po for:\n{_show(stale)}\nrun `manage.py compilemessages`"


# --- English dates: day first (en-GB) ---------------------------------------------------------------------
SEPT_3 = date(2026, 9, 3)


@pytest.mark.parametrize(("fmt", "expected"), [
    ("SHORT_DATE_FORMAT", "03/09/2026"),
    ("DATE_FORMAT", "3 September 2026"),
])
def test_english_dates_are_day_month_year(fmt, expected):
    with translation.override("en"):
        assert formats.date_format(SEPT_3, fmt) == expected
        assert Template("{{ d|date:'" + fmt + "' }}").render(Context({"d": SEPT_3})) == expected
        assert Template("{{ d }}").render(Context({"d": SEPT_3})) == "3 September 2026"


def test_english_date_times_are_day_first_on_a_24_hour_clock():
    when = timezone.make_aware(datetime(2026, 9, 3, 14, 30))
    with translation.override("en"), timezone.override("Europe/Paris"):
        assert formats.date_format(timezone.localtime(when), "SHORT_DATETIME_FORMAT") == "03/09/2026 14:30"


def test_english_forms_read_dates_day_first():
    from django import forms

    with translation.override("en"):
        assert forms.DateField().clean("03/09/2026") == SEPT_3


def test_french_dates_stay_french():
    with translation.override("fr"):
        assert formats.date_format(SEPT_3, "SHORT_DATE_FORMAT") == "03/09/2026"
        assert formats.date_format(SEPT_3, "DATE_FORMAT") == "3 septembre 2026"


# --- ages -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("born", "on", "fr", "en"), [
    (date(2026, 11, 20), date(2026, 12, 2), "12 jours", "12 days"),
    (date(2026, 12, 1), date(2026, 12, 2), "1 jour", "1 day"),
    (date(2026, 8, 25), date(2026, 12, 2), "3 mois", "3 months"),
    (date(2026, 1, 2), date(2026, 12, 2), "11 mois", "11 months"),
    (date(2025, 12, 2), date(2026, 12, 2), "1 an", "1 year"),
    (date(1979, 12, 3), date(2026, 12, 2), "46 ans", "46 years"),
])
def test_ages_under_one_year_are_in_months_or_days(born, on, fr, en):
    with translation.override("fr"):
        assert age_label(born, on) == fr
    with translation.override("en"):
        assert age_label(born, on) == en


# --- the trace's codes in words ---------------------------------------------------------------------------
def test_every_decision_of_the_gate_has_words():
    """Each basis the gate can record (access/gate.py) has a label: the DPO never reads a raw code."""
    from audit import labels

    source = (BASE / "access" / "gate.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'"((?:deny|system|care):[a-z_]+)"', source)) | {"role", "break_glass"}
    codes |= {f"care:{basis}" for basis in ("encounter", "appointment", "membership")}
    with translation.override("fr"):
        unlabelled = sorted(c for c in codes if labels.basis_label(c) == c)
    assert not unlabelled, f"give these codes a label in audit/labels.py BASES: {unlabelled}"
