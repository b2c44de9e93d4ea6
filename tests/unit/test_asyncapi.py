"""docs/asyncapi.yaml: current, valid AsyncAPI 3.0, and true to the code it describes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import yaml
from referencing.jsonschema import DRAFT7

from shared.bus import catalog
from shared.events import ALL_PAYLOADS, parse_event
from tools import asyncapi

ROOT = Path(__file__).resolve().parents[2]
SPEC_SCHEMA = ROOT / "tests" / "schemas" / "asyncapi-3.0.0.json"
DOC_URI = "urn:test:asyncapi"


@cache
def document() -> dict[str, Any]:
    return yaml.safe_load(asyncapi.DOCUMENT.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def spec_validator() -> jsonschema.Draft7Validator:
    """The official AsyncAPI 3.0.0 schema, its definitions found by their $id offline."""
    schema = json.loads(SPEC_SCHEMA.read_text(encoding="utf-8"))
    registry = referencing.Registry().with_resource(schema["$id"], DRAFT7.create_resource(schema))
    return jsonschema.Draft7Validator(schema, registry=registry.crawl())


def test_checked_in_document_is_what_the_generator_writes() -> None:
    # fails after a change to an event model or the bus catalog: run `make asyncapi`
    assert asyncapi.DOCUMENT.read_text(encoding="utf-8") == asyncapi.render()
    assert asyncapi.main(["--check"]) == 0


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(asyncapi.render().replace("job.posted", "job.postd", 1))
    assert asyncapi.main(["--check", "--output", str(stale)]) == 1
    assert asyncapi.main(["--output", str(stale)]) == 0
    assert asyncapi.main(["--check", "--output", str(stale)]) == 0


def test_document_is_valid_asyncapi_3() -> None:
    errors = sorted(spec_validator().iter_errors(document()), key=str)
    assert errors == [], [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]


def test_the_spec_schema_catches_mistakes() -> None:
    # the vendored schema really checks nested objects (bindings), not only the top
    broken = json.loads(json.dumps(document()))
    broken["channels"]["job.posted"]["bindings"]["amqp"]["exchange"]["type"] = "bogus"
    assert not spec_validator().is_valid(broken)


def _walk_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _walk_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _walk_refs(v)]
    return []


def test_every_reference_resolves_inside_the_document() -> None:
    doc = document()
    refs = set(_walk_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]


def test_one_channel_and_message_per_event_type_on_its_routing_key() -> None:
    doc = document()
    for model in ALL_PAYLOADS:
        key = "tick" if model.event_type == "tick.*" else model.event_type
        channel = doc["channels"][key]
        assert channel["address"] == ("tick.{schedule}" if key == "tick" else key)
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "herald.events"
        message = doc["components"]["messages"][key]
        assert message["payload"]["allOf"][1]["properties"]["data"] == {
            "$ref": f"#/components/schemas/{model.__name__}"
        }
    # what the bus binds is what the document says Herald receives
    for queue in catalog.ALL_QUEUES:
        for binding in queue.bindings:
            key = "tick" if binding.startswith("tick.") else binding
            operation = doc["operations"][f"receive.{key}"]
            assert queue.names("herald").work in operation["summary"]


def _validates(payload_pointer: str, instance: Any) -> list[str]:
    """Errors of ``instance`` against a schema inside the document, refs resolved there."""
    registry = referencing.Registry().with_resource(DOC_URI, DRAFT7.create_resource(document()))
    validator = jsonschema.Draft7Validator(
        {"$ref": f"{DOC_URI}#{payload_pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )
    return [e.message for e in validator.iter_errors(instance)]


@pytest.mark.parametrize("name", sorted(document()["components"]["messages"]))
def test_examples_are_events_herald_accepts_and_fit_the_published_schema(name: str) -> None:
    message = document()["components"]["messages"][name]
    assert message["examples"], f"{name} has no example"
    for example in message["examples"]:
        event = parse_event(example["payload"])  # what Herald's consumers do
        assert event.type == example["payload"]["type"]
        assert _validates(f"/components/messages/{name}/payload", example["payload"]) == []


def test_the_published_schema_refuses_what_herald_refuses() -> None:
    example = document()["components"]["messages"]["job.posted"]["examples"][0]["payload"]
    missing = {**example, "data": {k: v for k, v in example["data"].items() if k != "title"}}
    assert _validates("/components/messages/job.posted/payload", missing)
    wrong_type = {**example, "type": "job.updated"}
    assert _validates("/components/messages/job.posted/payload", wrong_type)


def test_the_types_documented_as_yours_are_the_ones_the_gateway_accepts() -> None:
    from shared.events import INTEGRATOR_TYPES
    from tools.asyncapi import PUBLISHERS, YOU

    assert {t for t, who in PUBLISHERS.items() if YOU in who} == INTEGRATOR_TYPES
