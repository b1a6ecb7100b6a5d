"""Retention policies: how long a record stays live, how long its archive is kept, and the SQL that finds
the patients whose period has ended.

Two profiles ship, selected by ``DPI_RETENTION_PROFILE``:

``establishment`` — health establishments, article R1112-7 of the Code de la santé publique (CSP):
    "Le dossier médical [...] est conservé pendant une durée de vingt ans à compter de la date du dernier séjour
    de son titulaire dans l'établissement ou de la dernière consultation externe en son sein. Lorsqu'en
    application des dispositions qui précèdent, la durée de conservation d'un dossier s'achève avant le
    vingt-huitième anniversaire de son titulaire, la conservation du dossier est prorogée jusqu'à cette date.
    Dans tous les cas, si la personne titulaire du dossier décède moins de dix ans après son dernier passage
    dans l'établissement, le dossier est conservé pendant une durée de dix ans à compter de la date du décès.
    Ces délais sont suspendus par l'introduction de tout recours gracieux ou contentieux [...]."
    Implemented exactly as written, in this order:
      1. kept through ``last activity + 20 years``;
      2. if that is before the 28th birthday, kept through the 28th birthday (this is what "a minor at the
         time" means in practice: only a patient under 8 at the last visit reaches 28 after the 20 years);
      3. "in all cases", if the patient died *less than* 10 years after the last activity, kept through
         ``date of death + 10 years`` instead (this replaces rules 1 and 2, and may be shorter than both);
      4. a claim (legal hold, ``retention.models.LegalHold``) suspends disposal.
``practice`` — medical practices, CNIL framework 2020-081 ("référentiel cabinets médicaux"): 5 years in the
    live database from the last intervention, then 15 years archived on a separate medium (20 years in all);
    electronic care sheet (FSE) duplicates 3 months (R161-47 CSS).

In both, the record leaves the live database (is archived) after ``DPI_RETENTION_ACTIVE_YEARS`` (default 5)
from the last activity, or at the end of its legal period if that comes first, and the archive is disposed
of (destroyed or anonymised) at the end of its legal period.

Dates. "Last activity" is ``Patient.last_activity_at`` (its local date in ``TIME_ZONE``), which every stay,
consultation, note, observation and document moves forward (``patients.services.touch_activity``): it is
never earlier than the last stay or consultation, so using it can only lengthen retention. A period of N years
from day D runs *through* the anniversary day D + N years (articles 641 and 642 of the Code de procédure
civile: a period in years ends on the day of the last year bearing the same date, at midnight; a date that does
not exist, 29 February, becomes the last day of the month). The patient is therefore due the day *after* the
anniversary: ``due`` means ``kept_through < today``.

The SQL in ``due_patients_sql`` and the Python in ``RetentionPolicy`` compute the same dates (PostgreSQL's
``date + interval 'N years'`` also turns 29 February into 28 February); the boundary tests check both.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.utils.translation import gettext_noop

# Access traces have their own period (CNIL 2021-122: 6 months to 1 year, up to 3 years where a misuse risk is
# documented): DPI_AUDIT_RETENTION_MONTHS, enforced by dropping whole monthly partitions (audit.services).

# R161-47 CSS (CNIL 2020-081): duplicates of electronic care sheets are kept 3 months. Documents of this media
# type are deleted from the live record once older than this, by the daily run.
CARE_SHEET_MEDIA_TYPE = "application/x-fse"
CARE_SHEET_COPY_DAYS = 90

# A record restored from the archive stays live this long before it may be selected again (a restore is not a
# stay: it does not move the legal period).
RESTORE_KEEP_LIVE_DAYS = 90


def add_years(day: date, years: int) -> date:
    """``day`` + ``years``; 29 February becomes 28 February in a common year (as PostgreSQL does)."""
    year = day.year + years
    last = calendar.monthrange(year, day.month)[1]
    return day.replace(year=year, day=min(day.day, last))


@dataclass(frozen=True)
class PatientDates:
    last_activity: date
    birth_date: date
    date_of_death: date | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    name: str
    label: str  # English, as in logs and commands; pages translate it (``{% translate policy.label %}``)
    source: str
    active_years: int  # live database
    total_years: int  # live + archive, from the last activity
    majority_extension_age: int | None  # kept at least through this birthday (R1112-7: 28)
    death_rule_years: int | None  # died less than N years after the last activity: kept N years from death

    def kept_through(self, d: PatientDates) -> date:
        """Last day the record must be kept (live or archived); disposal is possible the day after."""
        if self.death_rule_years and d.date_of_death is not None and \
                d.date_of_death < add_years(d.last_activity, self.death_rule_years):
            return add_years(d.date_of_death, self.death_rule_years)
        until = add_years(d.last_activity, self.total_years)
        if self.majority_extension_age:
            until = max(until, add_years(d.birth_date, self.majority_extension_age))
        return until

    def live_through(self, d: PatientDates) -> date:
        """Last day the record stays in the live database; it is archived the day after."""
        return min(add_years(d.last_activity, self.active_years), self.kept_through(d))

    def archive_due(self, d: PatientDates, today: date) -> bool:
        return self.live_through(d) < today

    def disposal_due(self, d: PatientDates, today: date) -> bool:
        return self.kept_through(d) < today

    # --- the same rules in SQL, over patients_patient p (alias "p"), with %(tz)s the local time zone ----------
    def sql_last_activity(self) -> str:
        return "(COALESCE(p.last_activity_at, p.created_at) AT TIME ZONE %(tz)s)::date"

    def sql_kept_through(self) -> str:
        last = self.sql_last_activity()
        normal = f"({last} + interval '{self.total_years} years')::date"
        if self.majority_extension_age:
            normal = f"GREATEST({normal}, (p.birth_date + interval '{self.majority_extension_age} years')::date)"
        if not self.death_rule_years:
            return normal
        n = self.death_rule_years
        return (f"CASE WHEN p.date_of_death IS NOT NULL AND p.date_of_death < ({last} + interval '{n} years')::date "
                f"THEN (p.date_of_death + interval '{n} years')::date ELSE {normal} END")

    def sql_live_through(self, active_years: int) -> str:
        last = self.sql_last_activity()
        return f"LEAST(({last} + interval '{active_years} years')::date, {self.sql_kept_through()})"


ESTABLISHMENT = RetentionPolicy(
    name="establishment", label=gettext_noop("Health establishment (R1112-7 CSP)"), source="R1112-7 CSP",
    active_years=5, total_years=20, majority_extension_age=28, death_rule_years=10,
)
PRACTICE = RetentionPolicy(
    name="practice", label=gettext_noop("Medical practice (CNIL 2020-081)"), source="CNIL deliberation 2020-081",
    active_years=5, total_years=20, majority_extension_age=None, death_rule_years=None,
)
PROFILES = {p.name: p for p in (ESTABLISHMENT, PRACTICE)}


def current_policy() -> RetentionPolicy:
    """The profile chosen by DPI_RETENTION_PROFILE, with the live period of DPI_RETENTION_ACTIVE_YEARS."""
    base = PROFILES[settings.DPI_RETENTION_PROFILE]
    years = settings.DPI_RETENTION_ACTIVE_YEARS
    if base.name == "practice":
        years = min(years, 5)  # CNIL 2020-081: at most 5 years in the live database
    return RetentionPolicy(**{**base.__dict__, "active_years": min(years, base.total_years)})


def due_patients_sql(policy: RetentionPolicy) -> str:
    """One set-based query: live patients whose live period ended before %(today)s, with the date their archive
    must be kept through. Excludes patients already in an archiving job and patients recently restored."""
    return f"""
SELECT p.id, {policy.sql_kept_through()} AS kept_through
FROM patients_patient p
WHERE {policy.sql_live_through(policy.active_years)} < %(today)s
  AND NOT EXISTS (SELECT 1 FROM retention_archivejob j WHERE j.patient_id = p.id AND j.state <> 'archived'
                  AND j.state <> 'abandoned')
  AND NOT EXISTS (SELECT 1 FROM retention_restorerequest r WHERE r.patient_id = p.id
                  AND r.state = 'restored' AND r.keep_live_until >= %(today)s)
"""  # noqa: S608 - built from the policy's constants
