"""The authorization matrix: role x data category x action, declared once.

``docs/authorization.md`` is generated from this module (``manage.py authorization_matrix``).
The matrix says what a role may do *at all*; for medical and restricted categories the gate also requires
a care relationship (or an active break-the-glass) with the patient: see ``CARE_RELATIONSHIP_REQUIRED``.
"""

from __future__ import annotations

import functools
from enum import StrEnum


class Role(StrEnum):
    PHYSICIAN = "physician"
    NURSE = "nurse"
    MIDWIFE = "midwife"
    PHARMACIST = "pharmacist"
    MEDICAL_SECRETARY = "medical_secretary"
    RECEPTION = "reception"
    DIM = "dim"  # médecin DIM: medical-information physician (archives, coding)
    DPO = "dpo"
    SECURITY_OFFICER = "security_officer"
    IT_ADMIN = "it_admin"
    MAINTENANCE = "maintenance"
    INTEGRATION = "integration"


class Category(StrEnum):
    ADMINISTRATIVE = "administrative"  # identity, contact, appointments, encounters
    MEDICAL = "medical"  # notes, observations, prescriptions, documents, allergies, problems
    RESTRICTED = "restricted"  # notes flagged sensitive (psychiatry, addiction...)


class Action(StrEnum):
    VIEW = "view"
    SEARCH = "search"
    CREATE = "create"
    AMEND = "amend"
    EXPORT = "export"
    PRINT = "print"
    PRESCRIBE = "prescribe"  # write or stop a prescription (physicians, midwives)
    ADMINISTER = "administer"  # record that a prescribed medication was given (or not), nurses' round
    VALIDATE = "validate"  # pharmaceutical validation of a prescription


A, M, R = Category.ADMINISTRATIVE, Category.MEDICAL, Category.RESTRICTED
ALL = frozenset(Action)
READ = frozenset({Action.VIEW, Action.SEARCH})
READ_PRINT = frozenset({Action.VIEW, Action.SEARCH, Action.PRINT})
# Actions that only make sense on clinical data (never on identity, stays or appointments).
CLINICAL_ACTS = frozenset({Action.PRESCRIBE, Action.ADMINISTER, Action.VALIDATE})
ADMIN_ALL = ALL - CLINICAL_ACTS

MATRIX: dict[Role, dict[Category, frozenset[Action]]] = {
    Role.PHYSICIAN: {
        A: READ_PRINT, M: ALL - {Action.VALIDATE}, R: ALL - {Action.PRESCRIBE, Action.VALIDATE, Action.ADMINISTER}
    },
    Role.MIDWIFE: {A: READ_PRINT, M: ALL - {Action.VALIDATE}, R: READ_PRINT | {Action.CREATE, Action.AMEND}},
    Role.NURSE: {A: READ_PRINT, M: READ_PRINT | {Action.CREATE, Action.AMEND, Action.ADMINISTER}, R: frozenset()},
    # Pharmacists validate prescriptions (analyse pharmaceutique, R4235-48 CSP); they write nothing else.
    Role.PHARMACIST: {A: READ, M: READ_PRINT | {Action.VALIDATE}, R: frozenset()},
    # Secretaries type letters and file documents for their unit's physicians.
    Role.MEDICAL_SECRETARY: {A: ADMIN_ALL, M: READ_PRINT | {Action.CREATE}, R: frozenset()},
    Role.RECEPTION: {A: ADMIN_ALL, M: frozenset(), R: frozenset()},
    # DIM: coding and archives (R6113-1 CSP); reads medical data for coding, within its own scope.
    Role.DIM: {A: READ | {Action.EXPORT}, M: READ | {Action.EXPORT}, R: READ},
    Role.DPO: {A: frozenset(), M: frozenset(), R: frozenset()},
    Role.SECURITY_OFFICER: {A: frozenset(), M: frozenset(), R: frozenset()},
    Role.IT_ADMIN: {A: frozenset(), M: frozenset(), R: frozenset()},
    Role.MAINTENANCE: {A: frozenset(), M: frozenset(), R: frozenset()},
    # Integration accounts: further narrowed by the scopes of their credentials (API).
    Role.INTEGRATION: {
        A: frozenset({Action.VIEW, Action.SEARCH, Action.CREATE, Action.AMEND}),
        M: frozenset({Action.VIEW, Action.SEARCH, Action.CREATE, Action.AMEND}),
        R: frozenset(),
    },
}

# Categories that need a care relationship with the patient, per role. Roles absent here reach the
# category without one (reception's administrative work, DIM coding, integration feeds).
CARE_RELATIONSHIP_REQUIRED: dict[Role, frozenset[Category]] = {
    Role.PHYSICIAN: frozenset({M, R}),
    Role.MIDWIFE: frozenset({M, R}),
    Role.NURSE: frozenset({M, R}),
    Role.PHARMACIST: frozenset({M, R}),
    Role.MEDICAL_SECRETARY: frozenset({M, R}),
    Role.DIM: frozenset(),
    Role.RECEPTION: frozenset(),
    Role.INTEGRATION: frozenset(),
}

# Roles that may use break-the-glass (emergency access) when they have no care relationship.
BREAK_GLASS_ROLES = frozenset({Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE})

# Roles that read medical data, and so must have a verified second factor (CNIL, health data).
MEDICAL_ROLES = frozenset(r for r, cats in MATRIX.items() if cats.get(M) or cats.get(R))

# Roles that are part of a unit's care staff (get care-team grants from the unit's encounters).
CARE_STAFF_ROLES = frozenset({Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE, Role.PHARMACIST, Role.MEDICAL_SECRETARY})

# Roles that can be the practitioner of an appointment (a consultation is given by a clinician; a secretary
# books appointments for others, never with herself).
CLINICAL_ROLES = frozenset({Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE, Role.PHARMACIST})

# Privileged roles: they reach the trace, the accounts, the keys or the servers (a maintenance provider, inside
# its approved window). Like every role that reads health data, they need a verified second factor on every page
# and API call (superusers too).
PRIVILEGED_ROLES = frozenset({Role.DPO, Role.SECURITY_OFFICER, Role.IT_ADMIN, Role.MAINTENANCE})

# Principals that authenticate by API token only: no web, admin or session sign-in, whatever their codes.
TOKEN_ONLY_ROLES = frozenset({Role.INTEGRATION})

# Who may lower a patient's confidentiality (restricted -> normal): a separate, audited act, never a field of
# a general update. Raising it (marking a VIP) stays an ordinary administrative amendment.
CONFIDENTIALITY_LOWERING_ROLES = frozenset({Role.DPO})

# --- identity visibility -----------------------------------------------------------------------------------
# A restricted patient (VIP, staff member, protected identity) exists, for a given user, only if the user is
# in the patient's care team (a confirmed care relationship), holds an active break-the-glass on them, or
# acts for one of the purposes below. Otherwise every channel answers as for a missing patient (404), and
# the refusal is recorded. The same rule filters searches (``gate.visible_patients``) and every by-id read
# or write (``gate.decide``).
#
# Purposes, per role: (category, action) pairs allowed on a restricted patient without a care relationship.
# Each use is flagged ``restricted_purpose`` (and ``restricted_patient``) in its audit event, which the
# detection rules raise as an alert for the DPO.
RESTRICTED_PURPOSES: dict[Role, frozenset[tuple[Category, Action]]] = {
    # Registering an arrival (admission, appointment) of a patient found by exact IPP / INS lookup.
    Role.RECEPTION: frozenset({(A, Action.CREATE)}),
    # The ADT and laboratory feeds (token-only) write what the hospital's systems send.
    Role.INTEGRATION: frozenset({(A, Action.CREATE), (A, Action.AMEND), (M, Action.CREATE)}),
}
# Roles that find a restricted patient by an exact identifier (IPP, or the INS of a qualified identity):
# reception registering an arrival. The lookup is recorded and flagged ``restricted_exact_lookup``.
EXACT_LOOKUP_ROLES = frozenset({Role.RECEPTION})
# Their purpose holds only for a patient they found that way, this long before the write: an arrival is
# registered right after the lookup. A raw id typed without it answers as a missing patient (an admission of
# a guessed id would put a hidden patient into a unit's care team).
EXACT_LOOKUP_MINUTES = 60


def restricted_purpose(role: Role | str, category: Category | str, action: Action | str) -> bool:
    try:
        return (Category(category), Action(action)) in RESTRICTED_PURPOSES.get(Role(role), frozenset())
    except ValueError:
        return False


# --- provenance of care relationships ----------------------------------------------------------------------
# Every fact that creates a care relationship (an encounter, an appointment, a care-team membership) records
# who created it and how (``source``: the feed, a staff member, the system). Rule: a fact created by the very
# person it would let in grants that person nothing until another person confirms it (a member of the
# unit, the care team, or the feed): no self-granted access. Others it lets in (the unit's other staff, the
# practitioner booked by a secretary) get their grant at once: for them it is an act of another person.
PROVENANCE_SOURCES = ("feed", "staff", "system")


# Who records which structured entry, beyond the matrix's "create" on medical data (secretaries file
# documents and letters, they do not chart allergies, problems or vital signs).
RECORDERS: dict[str, frozenset[Role]] = {
    "allergy": frozenset({Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE}),
    "problem": frozenset({Role.PHYSICIAN, Role.MIDWIFE}),
    "vitals": frozenset({Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE}),
    "document": frozenset({Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE, Role.MEDICAL_SECRETARY}),
}


def may_record(role: Role | str | None, entry: str) -> bool:
    try:
        return Role(role) in RECORDERS.get(entry, frozenset())
    except ValueError:
        return False


@functools.lru_cache(maxsize=4096)  # the matrix is a constant; asked several times for every decision
def allowed_by_matrix(role: Role | str, category: Category | str, action: Action | str) -> bool:
    try:
        return Action(action) in MATRIX[Role(role)].get(Category(category), frozenset())
    except ValueError:
        return False


@functools.lru_cache(maxsize=4096)
def needs_care_relationship(role: Role | str, category: Category | str) -> bool:
    try:
        return Category(category) in CARE_RELATIONSHIP_REQUIRED.get(Role(role), frozenset({M, R}))
    except ValueError:
        return True


def matrix_markdown() -> str:
    cats = list(Category)
    lines = [
        "| role | " + " | ".join(c.value for c in cats) + " | care relationship needed for |",
        "|---|" + "---|" * len(cats) + "---|",
    ]
    for role in Role:
        cells = []
        for c in cats:
            acts = [a.value for a in Action if a in MATRIX[role].get(c, frozenset())]
            cells.append(", ".join(acts) if acts else "—")
        need = ", ".join(
            c.value
            for c in cats
            if c in CARE_RELATIONSHIP_REQUIRED.get(role, frozenset({M, R})) and MATRIX[role].get(c)
        )
        lines.append(f"| {role.value} | " + " | ".join(cells) + f" | {need or '—'} |")
    return "\n".join(lines) + "\n"


# Identity vigilance (cellule d'identitovigilance): merges, unmerges and splits of patient files. A capability
# given by the group of that name to staff whose role already amends administrative data, not a role of its
# own: identity vigilance is done by reception or medical-secretariat staff appointed to it.
IDENTITY_VIGILANCE_GROUP = "identity_vigilance"
IDENTITY_VIGILANCE_BASE_ROLES = frozenset({Role.RECEPTION, Role.MEDICAL_SECRETARY})

# Privileges an account can hold besides its role, each of which needs a verified second factor whatever the
# role asks: the superuser and admin-site flags, any Django model permission (given to the account or to one of
# its groups), and the groups below (identity vigilance merges files; a group named after a privileged role
# gives that role where no staff profile says otherwise, e.g. a maintenance provider's account).
PRIVILEGE_GROUPS = frozenset({IDENTITY_VIGILANCE_GROUP, *(r.value for r in PRIVILEGED_ROLES)})


def may_manage_identities(role: Role | str | None, groups: set[str] | frozenset[str]) -> bool:
    try:
        return Role(role) in IDENTITY_VIGILANCE_BASE_ROLES and IDENTITY_VIGILANCE_GROUP in groups
    except ValueError:
        return False
