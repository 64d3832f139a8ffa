"""The contract published as OpenAPI 3 at /octoperf/openapi.json: unauthenticated, the contract only."""

import importlib

import jsonschema
import pytest
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
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


def test_the_document_is_generated_without_a_warning(db):
    # What drf-spectacular's deploy check would say, which cannot run there: the document reads the database.
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)

    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache


def test_the_document_publishes_the_contract_and_neither_the_admin_nor_the_probes_nor_the_allow_list(document):
    assert {
        "/octoperf/instances",
        "/octoperf/instances/{instance_id}",
        "/octoperf/instances/{instance_id}/state",
    } <= set(document["paths"])
    assert all(path.startswith("/octoperf/") and not path.endswith("/") for path in document["paths"])
    assert "/octoperf/openapi.json" not in document["paths"]
    # The allow-list is for customers' scripts with a read-only token, which the contract refuses.
    assert not any("allow-list" in path for path in document["paths"])


def test_every_instance_operation_wants_the_bearer_token_and_answers_the_error_object_on_401_403_and_503(document):
    assert document["components"]["securitySchemes"]["octoperfToken"]["scheme"] == "bearer"
    assert "/octoperf/<token>/" in document["components"]["securitySchemes"]["octoperfToken"]["description"]
    instance_operations = [op for path, _, op in operations(document) if path.startswith("/octoperf/instances")]
    assert len(instance_operations) == 4
    for operation in instance_operations:
        assert operation["security"] == [{"octoperfToken": []}]
        for status in ("401", "403", "503"):  # 403: a read-only token
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]


def test_create_takes_form_json_and_multipart_bodies_and_answers_a_value(document):
    create = document["paths"]["/octoperf/instances"]["post"]

    assert set(create["requestBody"]["content"]) == {
        "application/x-www-form-urlencoded",
        "application/json",
        "multipart/form-data",
    }
    body = document["components"]["schemas"]["InstanceCreateRequest"]
    assert set(body["required"]) == {"userData", "region", "type"}
    assert create["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InstanceIdValue"
    }
    assert set(create["responses"]) == {"200", "400", "401", "403", "409", "429", "503"}


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


# --- each input described once, by the serializer that validates it ------------------------------


def served() -> dict:
    return Client(HTTP_ACCEPT=JAVA_ACCEPT).get("/octoperf/openapi.json").json()


def body_field(document, component: str, name: str) -> dict:
    return document["components"]["schemas"][component]["properties"][name]


def create(octoperf, *, user_data: str = "x", region: str = "fsn1", type: str = "SMALL"):
    return octoperf.call("POST", "/instances", form={"userData": user_data, "region": region, "type": type})


def accepts(schema: dict, value) -> bool:
    """Whether a value is valid by the document (a validator sees only JSON Schema's keywords)."""
    return jsonschema.Draft4Validator(schema).is_valid(value)


def test_a_region_alias_added_in_the_admin_is_published_at_once(admin_client):
    response = admin_client.post("/admin/octoprovider/regionalias/add/", {"alias": "Germany", "location": "nbg1"})
    assert response.status_code == 302

    document = served()

    for component in ("InstanceCreateRequest", "StaticIpAllocateRequest", "StaticIpAssociateRequest"):
        region = body_field(document, component, "region")
        assert "`germany`" in region["description"], component
        assert accepts(region, "germany") and accepts(region, "Germany") and accepts(region, "fsn1")
        assert not accepts(region, "mars1")


def test_the_document_follows_settings_changed_after_its_modules_were_imported(db, settings, octoperf):
    # Imported first, as a running server has them: what they froze then would show below.
    for module in ("octoprovider.contract.schema", "instances.serializers", "instances.apis", "staticips.apis"):
        importlib.import_module(module)
    settings.REGION_ALIASES = {"eu-central": "fsn1"}
    settings.USER_DATA_MAX_BYTES = 1000

    document = served()

    assert "`eu-central`" in body_field(document, "InstanceCreateRequest", "region")["description"]
    assert "1000 bytes" in body_field(document, "InstanceCreateRequest", "userData")["description"]
    assert create(octoperf, user_data="a" * 1001, region="eu-central").json()["error"]["code"] == "user_data_too_large"


def test_user_data_is_limited_in_utf8_bytes_as_published(document, octoperf, sandbox):
    user_data = body_field(document, "InstanceCreateRequest", "userData")

    assert "32768 bytes" in user_data["description"] and "UTF-8" in user_data["description"]
    assert "maxLength" not in user_data  # JSON Schema counts characters; Hetzner counts bytes
    assert create(octoperf, user_data="a" * 32768).status_code == 200
    refused = create(octoperf, user_data="a" * 32769)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "user_data_too_large"
    assert len(sandbox.servers) == 1


def test_type_is_published_in_any_case_as_it_is_accepted(document, octoperf):
    type_ = body_field(document, "InstanceCreateRequest", "type")

    assert all(accepts(type_, value) for value in ("SMALL", "small", "Medium", "xLarge"))
    assert not accepts(type_, "HUGE")
    assert create(octoperf, type="Medium").status_code == 200


def test_association_id_is_published_as_the_association_id(document, octoperf):
    association_id = body_field(document, "StaticIpDissociateRequest", "associationId")

    assert "`assoc-" in association_id["description"]
    assert "zone" not in association_id["description"].lower()
    assert association_id["maxLength"] == 64
    response = octoperf.call(
        "PUT",
        "/static-ips/dissociate",
        form={"region": "fsn1", "instanceId": "i-1", "id": "ip-1", "associationId": "assoc-" + "0" * 59},
    )
    assert response.status_code == 400
    assert "associationId" in response.json()["error"]["message"]


def test_a_blank_zone_is_valid_by_the_document_as_by_the_service(document, octoperf):
    body = {"userData": "x", "region": "fsn1", "type": "SMALL", "zone": ""}

    assert accepts(document["components"]["schemas"]["InstanceCreateRequest"], body)
    assert octoperf.call("POST", "/instances", form=body).status_code == 200
