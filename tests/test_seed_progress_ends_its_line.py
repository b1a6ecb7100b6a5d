"""`manage.py seed` (run by `make run`) ends its "patients n/n" progress line, so what follows starts on a line
of its own instead of running into it."""

from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scratch_var(settings, tmp_path):
    """Demo secrets go under this test's own var/, never the checkout's."""
    settings.VAR_DIR = tmp_path / "var"


def test_the_last_progress_count_ends_its_line(monkeypatch):
    """What the seed prints or logs after the last batch (care teams, access history, detection) starts on a
    new line."""
    from dpi import seeding

    out = StringIO()
    recompute = seeding.care_grants_recompute

    def noisy_recompute(**kwargs):
        out.write("after the batches\n")
        return recompute(**kwargs)

    monkeypatch.setattr(seeding, "care_grants_recompute", noisy_recompute)
    call_command("seed", "--patients", "2", "--history-days", "0", stdout=out)
    text = out.getvalue()
    assert "\r  patients 2/2\nafter the batches\nSeeded 2 patients" in text
