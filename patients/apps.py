from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = _("Patients (administrative data)")  # the reception site's breadcrumb

    def ready(self) -> None:
        # A merged file's access traces belong in the kept file's access report (and back after an unmerge).
        from audit import selectors as audit_selectors
        from patients.selectors import person_files

        if person_files not in audit_selectors.person_files:
            audit_selectors.person_files.append(person_files)
