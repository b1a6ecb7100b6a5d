"""/dpo/alerts/ is the alert API (JSON): a browser asking for a page there is sent to the French alert queue
(/dpo/queue/) instead of DRF's English developer page; API clients still get JSON."""

import pytest

from audit.detection.models import Alert
from tests.detection_support import day_ago, fast_password_hashing  # noqa: F401
from tests.test_detection_api_dpo_only import client_for

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def alert(cast):
    return Alert.objects.create(user=cast.nurse, patient_id=cast.patient.pk, day=day_ago(1), score=110,
                                severity="high", rules=["same_name"], reason_fr="a", reason_en="a")


@pytest.mark.parametrize(("path", "target"), [
    ("/dpo/alerts/", "/dpo/queue/"),
    ("/dpo/alerts/{pk}/", "/dpo/queue/{pk}/"),
    ("/dpo/alerts/dashboard/", "/dpo/"),
])
def test_a_browser_is_redirected_to_the_page(cast, alert, path, target):
    response = client_for(cast.dpo).get(path.format(pk=alert.pk), HTTP_ACCEPT=BROWSER)
    assert response.status_code == 302
    assert response["Location"] == target.format(pk=alert.pk)


def test_the_queue_it_lands_on_is_french(cast, alert):
    page = client_for(cast.dpo).get("/dpo/alerts/", HTTP_ACCEPT=BROWSER, follow=True).content.decode()
    assert f"/dpo/queue/{alert.pk}/" in page
    assert "Django REST framework" not in page


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
def test_api_clients_still_get_json(cast, alert, accept):
    extra = {"HTTP_ACCEPT": accept} if accept else {}
    response = client_for(cast.dpo).get("/dpo/alerts/", **extra)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert [a["id"] for a in response.json()["results"]] == [alert.pk]


def test_no_page_of_the_api_is_the_developer_page(cast, alert):
    for path in ("/dpo/alerts/rules/", "/dpo/alerts/?format=api"):
        response = client_for(cast.dpo).get(path, HTTP_ACCEPT=BROWSER)
        assert "Django REST framework" not in response.content.decode()
