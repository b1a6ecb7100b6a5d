"""Clinicians' UI, the DPO dashboard and the session lock. Included at "/" by dpi/urls.py.

"home" stays un-namespaced (settings.LOGIN_REDIRECT_URL and other areas' templates use it); the pages of
this area are named "web:...".
"""

from django.urls import include, path

import dpi.converters  # noqa: F401 - registers the <id:...> URL converter
from dpi.web.views import chart_entry, clinical, conformity, dpo, printing, security, session

web_patterns = [
    path("session/lock/", session.session_lock, name="session_lock"),
    path("session/locked/", session.session_locked, name="session_locked"),
    path("session/ping/", session.session_ping, name="session_ping"),
    # clinicians
    path("patients/", clinical.patient_search, name="patient_search"),
    path("patients/<id:patient_id>/", clinical.chart, name="chart"),
    path("patients/<id:patient_id>/break-glass/", clinical.break_glass, name="break_glass"),
    path("patients/<id:patient_id>/notes/new/", clinical.note_create, name="note_create"),
    path("patients/<id:patient_id>/notes/<id:note_id>/", clinical.note_detail, name="note_detail"),
    path("patients/<id:patient_id>/notes/<id:note_id>/amend/", clinical.note_amend, name="note_amend"),
    path("patients/<id:patient_id>/documents/<id:document_id>/", clinical.document_view, name="document"),
    path("patients/<id:patient_id>/documents/new/", chart_entry.document_upload, name="document_upload"),
    path("patients/<id:patient_id>/allergies/new/", chart_entry.allergy_create, name="allergy_create"),
    path("patients/<id:patient_id>/allergies/none/", chart_entry.allergy_none, name="allergy_none"),
    path("patients/<id:patient_id>/problems/new/", chart_entry.problem_create, name="problem_create"),
    path("patients/<id:patient_id>/vitals/new/", chart_entry.vitals_create, name="vitals_create"),
    path("patients/<id:patient_id>/prescriptions/new/", chart_entry.prescription_create, name="prescription_create"),
    path("patients/<id:patient_id>/prescriptions/<id:rx_id>/stop/", chart_entry.prescription_stop,
         name="prescription_stop"),
    path("patients/<id:patient_id>/prescriptions/<id:rx_id>/validate/", chart_entry.prescription_validate,
         name="prescription_validate"),
    path("patients/<id:patient_id>/prescriptions/<id:rx_id>/administrations/new/",
         chart_entry.administration_create, name="administration_create"),
    path("patients/<id:patient_id>/prescriptions/<id:rx_id>/ordonnance.pdf", chart_entry.prescription_print,
         name="prescription_print"),
    path("patients/<id:patient_id>/results/", chart_entry.results, name="results"),
    path("patients/<id:patient_id>/results/trend/", chart_entry.results_trend, name="results_trend"),
    path("unit/", chart_entry.census, name="census"),
    path("cim10/", chart_entry.cim10_lookup, name="cim10_lookup"),
    # the IT administrator and the security officer
    path("security/", security.home, name="security_home"),
    path("security/accounts/<id:user_id>/unlock/", security.unlock, name="security_unlock"),
    path("security/audit/verify/", security.verify_audit, name="security_verify_audit"),
    path("patients/<id:patient_id>/print/record.pdf", printing.chart_print, name="chart_print"),
    path("patients/<id:patient_id>/print/prescriptions.pdf", printing.prescriptions_print,
         name="prescriptions_print"),
    # the DPO ("dpo/alerts/" is the detection API, included before this module)
    path("dpo/", dpo.dashboard, name="dpo_dashboard"),
    path("dpo/access-log/", dpo.access_log, name="dpo_access_log"),
    path("dpo/break-glass/", dpo.emergency_list, name="dpo_emergency_list"),
    path("dpo/break-glass/<id:access_id>/", dpo.emergency_review, name="dpo_emergency_review"),
    path("dpo/review-items/<id:item_id>/decide/", dpo.review_item_decide, name="dpo_review_item_decide"),
    path("dpo/review/start/", conformity.review_start, name="dpo_review_start"),
    path("dpo/conformity/", conformity.conformity, name="dpo_conformity"),
    path("dpo/conformity.pdf", conformity.conformity_pdf, name="dpo_conformity_pdf"),
    path("dpo/documents/<str:name>", conformity.dpo_document, name="dpo_document"),
    path("dpo/queue/", dpo.alerts, name="dpo_alerts"),
    path("dpo/queue/<id:alert_id>/", dpo.alert_detail, name="dpo_alert_detail"),
    path("dpo/queue/<id:alert_id>/review/", dpo.alert_review, name="dpo_alert_review"),
]

urlpatterns = [
    path("", session.home, name="home"),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the language switch in the top bar
    path("", include((web_patterns, "web"))),
]
