"""The API's OpenAPI schema: served to signed-in users, valid (openapi-spec-validator), and with
a real request body for every endpoint that reads one and a real response for every endpoint."""
import pytest
from django.core.management import call_command
from openapi_spec_validator import validate

from .test_fuzz import READS_BODY
from .test_permissions import ENDPOINTS

SAMPLE_ARGS = {"7": "{ref}", "h1": "{name}"}


def schema_path(path):
    parts = [SAMPLE_ARGS.get(part, part) for part in path.split("/")]
    return "/".join(parts)


@pytest.fixture
def schema(api):
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_the_schema_is_valid_and_every_endpoint_has_real_bodies(schema):
    validate(schema)
    for method, path, acts in ENDPOINTS:
        operation = schema["paths"][schema_path(path)][method.lower()]
        answers = {code: answer for code, answer in operation["responses"].items() if code.startswith("2")}
        assert answers, (method, path)
        for code, answer in answers.items():
            if code != "204":
                content = answer["content"]["application/json"]["schema"]
                assert content.get("$ref") or content.get("items") or content.get("properties"), (method, path)
        if acts and path in READS_BODY and method != "DELETE":
            assert "requestBody" in operation, (method, path)
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            assert body.get("$ref"), (method, path)
        assert {"400", "403"} <= set(operation["responses"]), (method, path)


@pytest.mark.django_db
def test_the_schema_and_its_page_are_for_signed_in_users(client, admin_client):
    assert client.get("/api/schema/").status_code in (401, 403)
    page = admin_client.get("/api/docs/")
    assert page.status_code == 200 and b"swagger" in page.content.lower()


def test_the_schema_generates_without_a_warning(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
