"""The AsyncAPI 3 document: valid against the official schema, in step with the contract, and
the file in docs/ is exactly what the generator prints."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api.registration import EXAMPLE_VALUES
from smartcity.asyncapi import build
from smartcity.control import Command, command_topic, state_topic
from smartcity.models import TELEMETRY_MODELS
from smartcity.topics import (
    Domain,
    alert_topic,
    errors_topic,
    profile_topic,
    status_topic,
    telemetry_topic,
)

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = json.loads((REPO / "tests/data/asyncapi-3.0.0.schema.json").read_text())
DOC = build()


def test_the_document_is_valid_asyncapi_3() -> None:
    errors = list(jsonschema.Draft7Validator(OFFICIAL).iter_errors(DOC))
    assert errors == [], [e.message[:200] for e in errors[:3]]


def test_the_official_schema_catches_a_broken_document() -> None:
    broken = copy.deepcopy(DOC)
    broken["operations"]["sendAlerts"]["action"] = "publish"  # AsyncAPI 2 wording
    assert list(jsonschema.Draft7Validator(OFFICIAL).iter_errors(broken))


def test_docs_asyncapi_json_is_the_generators_output() -> None:
    committed = json.loads((REPO / "docs/asyncapi.json").read_text(encoding="utf-8"))
    assert committed == orjson.loads(orjson.dumps(DOC)), \
        "regenerate it: smartcity asyncapi --out docs/asyncapi.json"


def _address_regex(address: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[a-zA-Z]+\\\}", "[^/]+", re.escape(address)) + "$")


ADDRESSES = [_address_regex(c["address"]) for c in DOC["channels"].values()]


@pytest.mark.parametrize("topic", [
    *(str(telemetry_topic(d, "booth-a3")) for d in Domain),
    *(str(telemetry_topic(d, "booth-a3")) + "/" + TELEMETRY_MODELS[d].metric_names()[0]
      for d in Domain),
    *(str(status_topic(d, "booth-a3")) for d in Domain),
    str(errors_topic("booth-a3")), str(profile_topic("booth-a3")),
    str(alert_topic(Domain.FLOOD, "flood-depth-x-1")),
    *(str(command_topic(c)) for c in Command), str(state_topic()),
])
def test_every_topic_the_contract_builds_has_a_channel(topic: str) -> None:
    assert any(a.match(topic) for a in ADDRESSES), topic


def _validator(ref: str) -> jsonschema.protocols.Validator:
    """A validator for a schema of the document, with its $refs resolved in the document."""
    doc = Resource.from_contents(DOC, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:smartcity", doc)
    return jsonschema.Draft202012Validator({"$ref": f"urn:smartcity{ref}"}, registry=registry)


@pytest.mark.parametrize("domain", list(Domain))
def test_message_schemas_accept_what_ingest_accepts_and_refuse_what_it_refuses(
        domain: Domain) -> None:
    message = DOC["components"]["messages"][f"{domain.value}Telemetry"]
    check = _validator(message["payload"]["$ref"])
    metric = TELEMETRY_MODELS[domain].metric_names()[0]
    good = {"ts": 1_795_000_000_000, "seq": 1, metric: EXAMPLE_VALUES[metric]}
    assert list(check.iter_errors(good)) == []
    assert list(check.iter_errors({**good, metric: str(EXAMPLE_VALUES[metric])}))
    assert list(check.iter_errors({**good, "colour": "red"}))
