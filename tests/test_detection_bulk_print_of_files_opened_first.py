"""bulk_export: opening each file before printing it does not make a bulk print of patients one has no care
relationship with look like the printing of one's own patients (the print button is on the chart page: every
print from the browser comes after a read of the file)."""

from datetime import timedelta

import pytest

from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient

pytestmark = pytest.mark.django_db
D = day_ago(3)


def test_files_of_patients_one_does_not_care_for_opened_then_printed_are_a_bulk_export(cast):
    patients = [make_patient() for _ in range(20)]  # no stay, no care relationship with the physician
    for j, p in enumerate(patients):
        ev(cast.physician, p, at=local(D, 10, j), resource_type="chart")
        ev(cast.physician, p, at=local(D, 10, j), action="print", resource_type="chart")
    [hit] = hits(run(D - timedelta(days=1), D), "bulk_export", user=cast.physician)
    assert hit["detail"]["patients"] == 20 and hit["detail"]["export_only"] == 20
