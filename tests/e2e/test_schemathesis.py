"""Property-based conformance: every documented operation, hit with generated input, answers
without a server error and with responses that match the served OpenAPI document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="session")
def operations(live_server: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    assert found, "the served document lists no operation"
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms(
    operations: list[schemathesis.APIOperation], live_server: str, mode: GenerationMode
) -> None:
    failures: list[str] = []
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            # Schema-valid input may still break a semantic rule (a common password, an address
            # that is not deliverable-looking), so "positive data acceptance" is not a contract.
            response = case.call_and_validate(
                base_url=live_server, excluded_checks=[positive_data_acceptance]
            )
            calls.append(response.status_code)

        try:
            check()
        except Unsatisfiable:
            # Nothing to break in an operation without parameters or body.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as failure:  # report every operation, not only the first
            failures.append(f"{operation.label}: {failure}")
    assert failures == []
    assert len(calls) >= len(operations)  # every operation was really called
    if mode is GenerationMode.NEGATIVE:
        assert any(400 <= status < 500 for status in calls)
