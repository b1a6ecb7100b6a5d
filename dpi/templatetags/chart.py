"""Template helpers of the chart: the patient banner and results written to their significant digits."""

from django import template

from dpi.clinical_reference import format_decimal, format_result
from dpi.web import chart_selectors

register = template.Library()


@register.inclusion_tag("web/_banner.html", takes_context=True)
def patient_banner(context, patient, banner=None):
    """Identity, age, status, allergies (or "none known" / "not recorded"), active problems, current stay,
    confidentiality and break-the-glass state: on every chart page. ``banner``: already read by the view
    (``chart_selectors.banner_from_chart``), else read here."""
    from django.utils import timezone

    from patients.ages import age_label

    return {
        "patient": patient,
        "age": age_label(patient.birth_date, patient.date_of_death or timezone.localdate()),
        "b": banner or chart_selectors.banner(patient.pk),
        "emergency": context.get("emergency"),
    }


@register.filter
def result_value(obs) -> str:
    return format_result(obs)


@register.filter
def encounter_title(encounter) -> str:
    return chart_selectors.encounter_title(encounter)


@register.filter
def decimal_text(value) -> str:
    return format_decimal(value)


ENTRY_FORMS = {
    "allergy": ("dpi.web.forms.AllergyForm", "allergy"),
    "problem": ("dpi.web.forms.ProblemForm", "problem"),
    "vitals": ("dpi.web.forms.VitalsForm", "vitals"),
    "prescription": ("dpi.web.forms.PrescriptionForm", None),
    "document": ("dpi.web.forms.DocumentUploadForm", "document"),
}


def _may(role, entry: str) -> bool:
    from access.policy import Action, Category, allowed_by_matrix, may_record

    if entry == "prescription":
        return allowed_by_matrix(role, Category.MEDICAL, Action.PRESCRIBE)
    return allowed_by_matrix(role, Category.MEDICAL, Action.CREATE) and may_record(role, entry)


@register.simple_tag(takes_context=True)
def chart_entry(context, entry: str, patient):
    """The entry form of one section, only for the roles that may use it (the views check again). The blank
    form's fields are drawn once per worker (dpi.web.form_html); the patient and CSRF token around them on
    every page."""
    from django.utils import timezone
    from django.utils.module_loading import import_string

    from dpi.web.form_html import blank_fields_html, joined

    request = context.get("request")
    role = getattr(request, "dpi_role", None)
    if request is None or not _may(role, entry):
        return ""
    form_path, _ = ENTRY_FORMS[entry]
    now = timezone.localtime()
    initial = {"effective_at": now.strftime("%Y-%m-%dT%H:%M"), "start": now.date(), "document_date": now.date()}
    fields = blank_fields_html((entry, *initial.values()), lambda: import_string(form_path)(
        initial=initial, auto_id=f"id_{entry}_%s"))
    # Drawn in the page's own context, as {% include %} does (the context processors are not run again).
    template = context.template.engine.get_template(f"web/_entry_{entry}.html")
    with context.push(patient=patient, fields=fields, fields_html=joined(fields),
                      fields_but_time_html=joined(fields, skip=("effective_at",))):
        return template.render(context)


@register.inclusion_tag("web/_prescription_actions.html", takes_context=True)
def prescription_actions(context, rx, patient):
    """Stop / validate / print / record an administration, as the role may (plain markup: no form object per
    line, so a long prescription list stays cheap to draw)."""
    from django.utils import timezone

    from access.policy import Action, Category, allowed_by_matrix

    request = context.get("request")
    role = getattr(request, "dpi_role", None)
    cache = context.render_context.setdefault("dpi_rx_may", {})
    if role not in cache:
        cache[role] = {a: allowed_by_matrix(role, Category.MEDICAL, a) for a in
                       (Action.PRESCRIBE, Action.VALIDATE, Action.ADMINISTER, Action.PRINT)}
        cache["now"] = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    may = cache[role]
    active = rx.status == "active"
    return {
        "rx": rx, "patient": patient, "csrf_token": context.get("csrf_token"), "now": cache["now"],
        "can_stop": active and may[Action.PRESCRIBE],
        "can_validate": active and may[Action.VALIDATE] and rx.validated_at is None,
        "can_print": may[Action.PRINT], "can_administer": active and may[Action.ADMINISTER],
    }


@register.simple_tag
def latest_vitals(patient, observations=None):
    return chart_selectors.vitals_latest(patient.pk, observations)
