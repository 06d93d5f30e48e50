"""A schema-driven fuzzer (schemathesis) against the real api on the real exhibit: for
every operation of the OpenAPI document, generated requests, with and without the admin
token, get no 500 and no status the document does not state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import status_code_conformance

from smartcity.servers import Influxd
from tests.exhibit import Exhibit, running_exhibit

pytestmark = pytest.mark.servers

TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd) -> Iterator[Exhibit]:
    with running_exhibit(tmp_path_factory.mktemp("fuzz"), influxd, root="fuzz") as e:
        yield e


@pytest.fixture(scope="module")
def api_schema(exhibit: Exhibit) -> Any:
    TOKEN["value"] = exhibit.admin_token
    return schemathesis.openapi.from_url(f"{exhibit.api_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_undocumented_status_and_no_server_error(case: Any) -> None:
    if case.path == "/api/v1/live":
        pytest.skip("the live stream never ends; tests/test_live.py covers it")
    for headers in ({}, {"Authorization": f"Bearer {TOKEN['value']}"}):
        response = case.call(headers=headers, timeout=30)
        assert response.status_code != 500, \
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
        case.validate_response(response, checks=[status_code_conformance])
