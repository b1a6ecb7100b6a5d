"""A list's ``page_size`` outside 1..200 is a 400 naming the field, never silently ignored (promise 4)."""

import pytest

from dpi.api.testing import bearer, make_api_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["null", "abc", "0", "-3", "201", "1.5", ""])
def test_a_bad_page_size_is_refused_naming_the_field(cast, client, value):
    _, token = make_api_client()
    response = client.get(f"/api/patients/?family=x&page_size={value}", headers=bearer(token))
    assert response.status_code == 400, response.content
    assert "page_size" in response.json()


@pytest.mark.parametrize("value", ["1", "200"])
def test_a_good_page_size_is_used(cast, client, value):
    _, token = make_api_client()
    response = client.get(f"/api/patients/?family=x&page_size={value}", headers=bearer(token))
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) <= int(value)


def test_the_schema_states_the_bounds():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    params = schema["paths"]["/api/patients/"]["get"]["parameters"]
    page_size = next(p for p in params if p["name"] == "page_size")
    assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}
