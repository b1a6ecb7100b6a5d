"""The DPO's conformity page: the live state of this instance held against the CNIL's rules, its signed PDF,
the documents the DPO keeps, and the button that opens the yearly authorization review. Every read is audited.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from access import gate
from access import services as access_services
from audit.services import event_record
from dpi.compliance import documents, live_state, signed_reports
from dpi.compliance.conformity import CATALOGUE
from dpi.web.permissions import dpo_required


def _record(request, action: str, what: str, details: dict | None = None) -> None:
    event_record(actor=request.user, actor_role="dpo", actor_unit=gate.unit_of(request.user), action=action,
                 outcome="allowed", resource_type=what, basis="role", details=details or {})


@dpo_required
def conformity(request):
    state = live_state.live_state()
    _record(request, "view", "conformity_live_state", {"status": state.status})
    return render(request, "dpo/conformity.html", {
        "state": state,
        "documents": list(documents.all_documents()),
        "measures": len(CATALOGUE),
        "organisational": sum(1 for m in CATALOGUE if m.organisational),
    })


@dpo_required
def conformity_pdf(request):
    state = live_state.live_state()
    data = signed_reports.live_state_pdf(state, generated_by=request.user.get_full_name() or request.user.username)
    _record(request, "export", "conformity_live_state", {"status": state.status, "format": "pdf"})
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="etat-conformite-{timezone.localdate():%Y-%m-%d}.pdf"')
    return response


@dpo_required
def dpo_document(request, name: str):
    docs = documents.all_documents()
    if name not in docs:
        raise Http404
    content_type, text = docs[name]
    _record(request, "export", "dpo_document", {"name": name})
    response = HttpResponse(text, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@dpo_required
@require_POST
def review_start(request):
    try:
        days = max(7, min(int(request.POST.get("due_days", "30")), 180))
    except ValueError:
        days = 30
    name = request.POST.get("name", "").strip() or _("Yearly authorization review %(year)d") % {
        "year": timezone.localdate().year}
    try:
        campaign = access_services.review_campaign_start(actor=request.user, name=name[:100],
                                                         due_at=timezone.now() + timedelta(days=days))
    except (PermissionDenied, ValidationError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, _("Review campaign opened: %(n)d rights to review.") % {
            "n": campaign.items.count()})
    return redirect(reverse("web:dpo_dashboard") + "#review")
