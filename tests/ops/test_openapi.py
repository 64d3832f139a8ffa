"""The contract published as OpenAPI 3 at /octoperf/openapi.json: unauthenticated, the contract only."""

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from tests.conftest import JAVA_ACCEPT


@pytest.fixture
def document(db):
    response = Client(HTTP_ACCEPT=JAVA_ACCEPT).get("/octoperf/openapi.json")
    assert response.status_code == 200, response.content
    return response.json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_document_is_valid_openapi_3_served_without_a_token(document):
    validate_schema(document)

    assert document["openapi"].startswith("3.")


def test_the_document_publishes_the_contract_and_neither_the_admin_nor_the_probes(document):
    assert {"/octoperf/instances", "/octoperf/instances/{instance_id}", "/octoperf/instances/{instance_id}/state"} <= set(
        document["paths"]
    )
    assert all(path.startswith("/octoperf/") and not path.endswith("/") for path in document["paths"])
    assert "/octoperf/openapi.json" not in document["paths"]


def test_every_instance_operation_wants_the_bearer_token_and_answers_the_error_object_on_401_and_503(document):
    assert document["components"]["securitySchemes"]["octoperfToken"]["scheme"] == "bearer"
    assert "/octoperf/<token>/" in document["components"]["securitySchemes"]["octoperfToken"]["description"]
    instance_operations = [op for path, _, op in operations(document) if path.startswith("/octoperf/instances")]
    assert len(instance_operations) == 4
    for operation in instance_operations:
        assert operation["security"] == [{"octoperfToken": []}]
        for status in ("401", "503"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]


def test_create_takes_form_json_and_multipart_bodies_and_answers_a_value(document):
    create = document["paths"]["/octoperf/instances"]["post"]

    assert set(create["requestBody"]["content"]) == {
        "application/x-www-form-urlencoded", "application/json", "multipart/form-data",
    }
    body = document["components"]["schemas"]["InstanceCreateRequest"]
    assert set(body["required"]) == {"userData", "region", "type"}
    assert create["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InstanceIdValue"
    }
    assert set(create["responses"]) == {"200", "400", "401", "429", "503"}


def test_void_answers_are_documented_without_a_body(document):
    reboot = document["paths"]["/octoperf/instances/{instance_id}"]["put"]
    delete = document["paths"]["/octoperf/instances"]["delete"]

    assert "content" not in reboot["responses"]["200"]
    assert "content" not in delete["responses"]["200"]
    assert [p["name"] for p in delete["parameters"] if p["in"] == "query"] == ["instanceId"]


def test_the_states_are_the_ones_the_state_endpoint_answers(document):
    state = document["components"]["schemas"]["InstanceStateValue"]["properties"]["value"]
    enum = state.get("enum") or document["components"]["schemas"][state["$ref"].rsplit("/", 1)[1]]["enum"]

    assert set(enum) == {"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}


def test_create_links_to_the_operations_that_take_its_instance_id(document):
    links = document["paths"]["/octoperf/instances"]["post"]["responses"]["200"]["links"]

    assert {link["operationId"] for link in links.values()} == {"instance_state", "instance_reboot", "instance_delete"}
