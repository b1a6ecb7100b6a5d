"""INSi teleservice client: retrieve (or verify) a patient's INS and strict traits from the national referential.

``client()`` returns the configured backend (``DPI_INSI_BACKEND``):

- ``simulator`` (default outside production): answers from a synthetic referential (``patients/data/
  insi_referential.json`` plus what tests register), including "no result" and "several results";
- ``national``: the national teleservice (SOAP over mutual TLS with the establishment's certificate,
  ``DPI_INSI_ENDPOINT``, ``DPI_INSI_CERT_FILE``, ``DPI_INSI_KEY_FILE``). The request shape follows the
  CNDA guide; it has not been exercised against the real service here (no certificate in this project).

Every call is recorded as an ``InsiQuery`` row by ``patients.services.insi_search`` (never call a backend
directly from a channel).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from patients import ins as ins_rules

REFERENTIAL = Path(__file__).resolve().parent / "data" / "insi_referential.json"


@dataclass(frozen=True)
class InsiTraits:
    """What is sent: the strict traits typed at reception (or read from the Vitale card)."""

    birth_name: str
    first_names: str
    sex: str
    birth_date: date
    birthplace_insee: str = ""
    ins: str = ""  # given: a verification of this INS against the traits (the "vérification" operation)


@dataclass(frozen=True)
class InsiIdentity:
    """One identity of the national referential: INS, OID and strict traits as the referential writes them."""

    ins: str
    oid: str
    birth_name: str
    first_names: str
    sex: str
    birth_date: date
    birthplace_insee: str

    @property
    def first_name(self) -> str:
        return self.first_names.split(" ")[0]


@dataclass(frozen=True)
class InsiAnswer:
    outcome: str  # found | none | several | error
    identities: tuple[InsiIdentity, ...] = field(default_factory=tuple)
    detail: str = ""


class InsiBackend(Protocol):
    name: str

    def search(self, traits: InsiTraits) -> InsiAnswer: ...


def _matches(person: InsiIdentity, traits: InsiTraits) -> bool:
    """The referential's search: birth name, first given name (within the list), sex and birth date."""
    given = set(ins_rules.normalise_trait(traits.first_names).split(" "))
    return (
        person.birth_name == ins_rules.normalise_trait(traits.birth_name)
        and person.first_name in given
        and person.sex == traits.sex
        and person.birth_date == traits.birth_date
        and (not traits.birthplace_insee or traits.birthplace_insee.upper() == person.birthplace_insee)
        and (not traits.ins or ins_rules.normalise(traits.ins) == person.ins)
    )


class SimulatorBackend:
    """A local stand-in for the teleservice, over a synthetic referential (demo OID by default)."""

    name = "simulator"
    _registered: list[InsiIdentity] = []  # noqa: RUF012 - process-wide on purpose (tests, demo seed)

    def __init__(self, path: Path | None = None):
        self.path = path or Path(getattr(settings, "DPI_INSI_SIMULATOR_FILE", "") or REFERENTIAL)

    def referential(self) -> list[InsiIdentity]:
        with open(self.path, encoding="utf-8") as fh:
            raw = json.load(fh)
        people = [
            InsiIdentity(**{**row, "birth_date": date.fromisoformat(row["birth_date"])}) for row in raw["identities"]
        ]
        return people + list(self._registered)

    @classmethod
    def register(cls, identity: InsiIdentity) -> None:
        """Add a synthetic person to the simulated referential (tests, demo data)."""
        if identity not in cls._registered:
            cls._registered.append(identity)

    @classmethod
    def forget_registered(cls) -> None:
        cls._registered.clear()

    def search(self, traits: InsiTraits) -> InsiAnswer:
        found = tuple(p for p in self.referential() if _matches(p, traits))
        if not found:
            return InsiAnswer("none", detail="Aucune identité trouvée")
        if len(found) > 1:
            return InsiAnswer("several", found, detail="Plusieurs identités trouvées : préciser les traits")
        return InsiAnswer("found", found)


class NationalBackend:
    """The national INSi teleservice. Needs the establishment's certificate (mutual TLS)."""

    name = "national"

    def __init__(self) -> None:
        self.endpoint = getattr(settings, "DPI_INSI_ENDPOINT", "")
        self.cert = getattr(settings, "DPI_INSI_CERT_FILE", "")
        self.key = getattr(settings, "DPI_INSI_KEY_FILE", "")
        self.ca = getattr(settings, "DPI_INSI_CA_FILE", "") or None
        if not (self.endpoint and self.cert and self.key):
            raise ImproperlyConfigured("DPI_INSI_BACKEND=national needs DPI_INSI_ENDPOINT, DPI_INSI_CERT_FILE "
                                       "and DPI_INSI_KEY_FILE")

    def search(self, traits: InsiTraits) -> InsiAnswer:
        import ssl
        import urllib.request
        from xml.sax.saxutils import escape

        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:insi="http://www.cnamts.fr/webservice"><soap:Body><insi:RECSANSVITALE>'
            f"<insi:NomNaissance>{escape(ins_rules.normalise_trait(traits.birth_name))}</insi:NomNaissance>"
            f"<insi:Prenom>{escape(ins_rules.normalise_trait(traits.first_names))}</insi:Prenom>"
            f"<insi:Sexe>{escape(traits.sex)}</insi:Sexe>"
            f"<insi:DateNaissance>{traits.birth_date.isoformat()}</insi:DateNaissance>"
            f"<insi:LieuNaissance>{escape(traits.birthplace_insee)}</insi:LieuNaissance>"
            "</insi:RECSANSVITALE></soap:Body></soap:Envelope>"
        ).encode()
        context = ssl.create_default_context(cafile=self.ca)  # the server is verified; we present our certificate
        context.load_cert_chain(self.cert, self.key)
        request = urllib.request.Request(self.endpoint, data=body,  # noqa: S310 - configured https endpoint
                                         headers={"Content-Type": "application/soap+xml; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, context=context, timeout=15) as response:  # noqa: S310
                payload = response.read()
        except OSError as exc:
            return InsiAnswer("error", detail=str(exc)[:300])
        return parse_national_answer(payload)


def parse_national_answer(payload: bytes) -> InsiAnswer:
    from xml.etree import ElementTree

    # The national service over mutual TLS; Python's parser resolves no external entity.
    root = ElementTree.fromstring(payload)  # noqa: S314
    people = []
    for node in root.iter():
        if node.tag.endswith("Individu"):
            values = {child.tag.split("}")[-1]: (child.text or "").strip() for child in node.iter()}
            people.append(InsiIdentity(
                ins=values.get("NumIdentifiant", "") + values.get("Cle", ""), oid=values.get("OID", ""),
                birth_name=values.get("NomNaissance", ""), first_names=values.get("ListePrenom", ""),
                sex=values.get("Sexe", ""), birth_date=date.fromisoformat(values.get("DateNaissance", "")),
                birthplace_insee=values.get("LieuNaissance", ""),
            ))
    if not people:
        return InsiAnswer("none")
    if len(people) > 1:
        return InsiAnswer("several", tuple(people))
    return InsiAnswer("found", tuple(people))


def client() -> InsiBackend:
    backend = getattr(settings, "DPI_INSI_BACKEND", "simulator")
    if backend == "simulator":
        return SimulatorBackend()
    if backend == "national":
        return NationalBackend()
    raise ImproperlyConfigured(f"DPI_INSI_BACKEND must be 'simulator' or 'national', got {backend!r}")


def as_dict(identity: InsiIdentity) -> dict:
    out = asdict(identity)
    out["birth_date"] = identity.birth_date.isoformat()
    return out
