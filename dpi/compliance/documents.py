"""Documents the DPO must keep, generated from this instance's configuration.

- the record of processing activities entry (art. 30 GDPR), as text and structured JSON;
- the inputs of the data protection impact assessment (art. 35): data categories, recipients, retention and
  the measures of the conformity catalogue;
- the patient information notice (art. 13-14 GDPR; CNIL DPI fiche 8), in French.

They describe what the software does with the settings in force; the establishment completes and signs them.
``manage.py dpo_documents --out DIR`` writes them all; the DPO page links to each (downloads are audited).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from access.policy import MATRIX, Category, Role
from dpi.compliance.conformity import CATALOGUE

DATA_CATEGORIES = [
    {"category": "identité et contact", "gate_category": Category.ADMINISTRATIVE.value,
     "examples": "nom de naissance, prénoms, date et lieu de naissance, sexe, INS (chiffré), IPP, adresse, téléphone"},
    {"category": "séjours et rendez-vous", "gate_category": Category.ADMINISTRATIVE.value,
     "examples": "dates d'entrée et de sortie, rendez-vous (le motif est une donnée de santé, chiffrée)"},
    {"category": "données de santé", "gate_category": Category.MEDICAL.value,
     "examples": "observations, résultats, prescriptions, documents, allergies, problèmes (texte libre chiffré)"},
    {"category": "données de santé à accès restreint", "gate_category": Category.RESTRICTED.value,
     "examples": "notes sensibles (psychiatrie, addictologie...)"},
    {"category": "traces d'accès", "gate_category": "audit",
     "examples": "qui a accédé à quel dossier, quand, pourquoi, avec quel résultat"},
]

LEGAL_BASES = [
    "Art. 6(1)(e) RGPD : mission d'intérêt public (établissement public) ou 6(1)(c) : obligation légale "
    "(tenue du dossier médical, art. L1112-1 et R1112-2 CSP)",
    "Art. 9(2)(h) RGPD : médecine préventive, diagnostics médicaux, prise en charge sanitaire",
]


def _retention() -> dict[str, Any]:
    from retention import policies

    policy = policies.current_policy()
    return {
        "profile": policy.name,
        "label": str(policy.label),
        "source": str(policy.source),
        "active_years": policy.active_years,
        "total_years": policy.total_years,
        "access_traces_months": settings.DPI_AUDIT_RETENTION_MONTHS,
    }


def _recipients() -> list[dict[str, Any]]:
    internal = []
    for role in Role:
        cats = sorted(c.value for c, acts in MATRIX[role].items() if acts)
        if cats and role != Role.INTEGRATION:
            internal.append({"recipient": role.value, "kind": "internal", "categories": cats,
                             "condition": "équipe de soins (ou bris de glace tracé) pour les données de santé"
                             if Category.MEDICAL.value in cats else "besoin d'en connaître administratif"})
    try:
        from dpi.api.models import ApiClient

        clients = list(ApiClient.objects.filter(is_active=True).order_by("name").values("name", "scopes"))
    except Exception:  # no database (documentation build): systems are listed by the establishment
        clients = []
    systems = [{"recipient": c["name"], "kind": "system", "categories": sorted(c["scopes"]),
                "condition": "jeton à portée limitée, chaque appel tracé"} for c in clients]
    return internal + systems


def register_entry() -> dict[str, Any]:
    """The record of processing activities entry (art. 30(1) GDPR) for the DPI."""
    return {
        "controller": {"name": settings.DPI_CONTROLLER_NAME, "address": settings.DPI_CONTROLLER_ADDRESS},
        "dpo": {"contact": settings.DPI_DPO_CONTACT, "emails": list(settings.DPI_DPO_EMAILS)},
        "processing": "Dossier patient informatisé (DPI) : prise en charge des patients, coordination des soins, "
                      "traçabilité des accès",
        "purposes": [
            "prise en charge sanitaire des patients et coordination des soins",
            "gestion administrative des séjours et des rendez-vous",
            "sécurité du système d'information et traçabilité des accès (CNIL 2021-122)",
        ],
        "legal_bases": LEGAL_BASES,
        "data_subjects": ["patients", "professionnels accédant au dossier (traces)"],
        "data_categories": DATA_CATEGORIES,
        "recipients": _recipients(),
        "transfers_outside_eu": "aucun par le logiciel (à confirmer pour l'hébergeur)",
        "retention": _retention(),
        "security_measures": [f"{m.code} {m.title}" for m in CATALOGUE if m.modules],
    }


def dpia_inputs() -> dict[str, Any]:
    """What a DPIA (art. 35 GDPR) needs from the software: data, recipients, retention and measures."""
    entry = register_entry()
    return {
        "processing": entry["processing"],
        "data_categories": entry["data_categories"],
        "recipients": entry["recipients"],
        "retention": entry["retention"],
        "measures": [
            {"code": m.code, "source": m.source, "title": m.title, "what_dpi_does": m.what_dpi_does,
             "organisational": m.organisational}
            for m in CATALOGUE
        ],
        "settings": {name: str(getattr(settings, name)) for name in sorted(
            {s for m in CATALOGUE for s in m.settings})},
    }


def _md_list(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items]


def register_entry_markdown() -> str:
    e = register_entry()
    r = e["retention"]
    lines = [
        "# Registre des activités de traitement — fiche « Dossier patient informatisé »", "",
        f"**Responsable de traitement :** {e['controller']['name']} — {e['controller']['address']}",
        f"**Délégué à la protection des données :** {e['dpo']['contact']} ({', '.join(e['dpo']['emails'])})", "",
        f"**Traitement :** {e['processing']}", "", "## Finalités", *_md_list(e["purposes"]), "",
        "## Bases légales", *_md_list(e["legal_bases"]), "",
        "## Personnes concernées", *_md_list(e["data_subjects"]), "",
        "## Catégories de données",
        *_md_list([f"{c['category']} ({c['gate_category']}) : {c['examples']}" for c in e["data_categories"]]), "",
        "## Destinataires",
        *_md_list([f"{d['recipient']} — {', '.join(d['categories'])} — {d['condition']}" for d in e["recipients"]]),
        "", f"**Transferts hors UE :** {e['transfers_outside_eu']}", "",
        "## Durées de conservation",
        f"- Dossier : {r['label']} ({r['source']}) — {r['active_years']} ans en base active, {r['total_years']} ans "
        "au total",
        f"- Traces d'accès : {r['access_traces_months']} mois", "",
        "## Mesures de sécurité", *_md_list(e["security_measures"]), "",
    ]
    return "\n".join(lines)


def dpia_inputs_markdown() -> str:
    d = dpia_inputs()
    lines = ["# Éléments pour l'analyse d'impact (AIPD) du DPI", "",
             "Générés depuis la configuration de cette instance ; l'établissement conduit l'analyse et la signe.",
             "", "## Mesures", "", "| mesure | source | ce que fait dpi | à la charge de l'établissement |",
             "|---|---|---|---|"]
    for m in d["measures"]:
        lines.append(f"| {m['code']} {m['title']} | {m['source']} | {m['what_dpi_does'] or '—'} | "
                     f"{m['organisational'] or '—'} |")
    lines += ["", "## Paramètres en vigueur", ""] + [f"- `{k}` = `{v}`" for k, v in d["settings"].items()]
    return "\n".join(lines) + "\n"


def patient_notice_fr() -> str:
    """The information notice for patients (art. 13 GDPR, CNIL DPI fiche 8), from the settings in force."""
    r = _retention()
    if r["profile"] == "practice":
        retention = (f"Votre dossier est conservé {r['active_years']} ans après votre dernière consultation, "
                     f"puis archivé sur un support distinct jusqu'à {r['total_years']} ans au total, avant d'être "
                     "détruit ou anonymisé.")
    else:
        retention = ("Votre dossier est conservé 20 ans à compter de votre dernier séjour ou de votre dernière "
                     "consultation externe (article R1112-7 du code de la santé publique) ; jusqu'à votre "
                     "28e anniversaire si cette date est plus tardive ; 10 ans après un décès survenu moins de "
                     f"10 ans après la dernière venue. Il reste {r['active_years']} ans dans la base active, puis "
                     "il est archivé, avant d'être détruit ou anonymisé sur décision du directeur après avis du "
                     "médecin responsable de l'information médicale.")
    return "\n".join([
        f"# Vos données de santé à {settings.DPI_CONTROLLER_NAME}", "",
        "## Pourquoi nous traitons vos données",
        "Votre dossier patient informatisé permet à l'équipe qui vous soigne de disposer des informations "
        "nécessaires à votre prise en charge et de coordonner vos soins. Il sert aussi à la gestion "
        "administrative de vos séjours et rendez-vous.", "",
        "## Qui peut y accéder",
        "Seuls les professionnels de l'équipe qui vous prend en charge accèdent à vos données de santé. "
        "L'accueil ne voit que vos données administratives. En cas d'urgence vitale, un professionnel hors de "
        "l'équipe peut accéder à votre dossier de façon exceptionnelle (« bris de glace ») : cet accès est "
        "justifié, limité dans le temps et contrôlé par le délégué à la protection des données. "
        "Chaque consultation de votre dossier est tracée.", "",
        "## Combien de temps", retention,
        f"Les traces des accès à votre dossier sont conservées {r['access_traces_months']} mois.", "",
        "## Vos droits",
        "Vous pouvez accéder à votre dossier et savoir qui l'a consulté, demander la rectification de données "
        "inexactes et la limitation de leur traitement. Vous pouvez vous opposer à ce qu'un professionnel "
        "nommé accède à votre dossier. La tenue du dossier médical étant une obligation légale, l'effacement "
        "et l'opposition au traitement lui-même ne sont pas possibles pendant la durée de conservation. "
        "Nous répondons dans un délai d'un mois.", "",
        "## Contact",
        f"Délégué à la protection des données : {settings.DPI_DPO_CONTACT} "
        f"({', '.join(settings.DPI_DPO_EMAILS)}).",
        "Vous pouvez introduire une réclamation auprès de la CNIL (www.cnil.fr).", "",
    ])


def all_documents() -> dict[str, tuple[str, str]]:
    """file name -> (content type, text)."""
    return {
        "registre-traitement.md": ("text/markdown; charset=utf-8", register_entry_markdown()),
        "registre-traitement.json": ("application/json", json.dumps(register_entry(), ensure_ascii=False,
                                                                    indent=2)),
        "aipd-elements.md": ("text/markdown; charset=utf-8", dpia_inputs_markdown()),
        "aipd-elements.json": ("application/json", json.dumps(dpia_inputs(), ensure_ascii=False, indent=2)),
        "information-patients.md": ("text/markdown; charset=utf-8", patient_notice_fr()),
    }
