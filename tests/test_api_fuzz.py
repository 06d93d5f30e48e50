"""A schema-driven fuzzer (schemathesis) against the real api on the real exhibit: for
every operation of the OpenAPI document, generated requests, with and without the admin
token, get no 500 and no status the document does not state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import status_code_conformance

from launcher.servers import Influxd
from tests.exhibit import Exhibit, running_exhibit

pytestmark = pytest.mark.servers

EXAMPLES = 12
NEVER_ENDS = {("GET", "/api/v1/live")}  # the live stream; tests/test_live.py covers it


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd) -> Iterator[Exhibit]:
    with running_exhibit(tmp_path_factory.mktemp("fuzz"), influxd, root="fuzz") as e:
        yield e


def fuzz(operation: Any, token: str) -> list[str]:
    """Run the generated cases of one operation; what went wrong, one line each."""
    problems: list[str] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            response = case.call(headers=headers, timeout=30)
            where = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code == 500:
                problems.append(f"{where}: {response.text[:200]}")
            try:
                case.validate_response(response, checks=[status_code_conformance])
            except (Exception, BaseExceptionGroup) as e:  # every failure, one line each
                for failure in getattr(e, "exceptions", [e]):
                    problems.append(f"{where}: {type(failure).__name__}: "
                                    f"{str(failure).strip().splitlines()[0][:160]}")

    run()
    return problems


def test_the_fuzzer_finds_no_undocumented_status_and_no_server_error(exhibit: Exhibit) -> None:
    schema = schemathesis.openapi.from_url(f"{exhibit.api_url}/openapi.json")
    problems: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here, loudly
        if (operation.method.upper(), operation.path) in NEVER_ENDS:
            continue
        tried += 1
        problems += fuzz(operation, exhibit.admin_token)
    assert tried >= 20, f"only {tried} operations in the document"
    assert not problems, "\n".join(sorted(set(problems))[:40])
