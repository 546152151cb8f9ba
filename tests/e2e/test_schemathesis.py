"""Property-based conformance: every documented operation, hit with generated input, answers
without a server error and with responses that match the served OpenAPI document."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="session")
def operations(live_server: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    assert found, "the served document lists no operation"
    return found


def fresh_token(live_server: str) -> str:
    """A new account and session, so one operation's effects (revocations) spare the others."""
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    response = httpx.post(
        f"{live_server}/api/v1/auth/register",
        json={"email": email, "password": "correct horse battery"},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


def conformance_check(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    calls: list[int],
) -> Callable[[], None]:
    # Schema-valid input may still break a semantic rule (a common password, an address that
    # is not deliverable-looking), so "positive data acceptance" is not a contract. Nor is
    # "negative data rejection" for a multipart form: its fields are text on the wire, so a
    # field "made" boolean or integer arrives as the valid text "true" or "29267".
    excluded = [positive_data_acceptance]
    if any(body.media_type == "multipart/form-data" for body in operation.body):
        excluded.append(negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same inputs on every run: CI is as reproducible as a local run
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=base_url, headers=headers, excluded_checks=excluded
        )
        calls.append(response.status_code)

    return check  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms(
    operations: list[schemathesis.APIOperation], live_server: str, mode: GenerationMode
) -> None:
    failures: list[str] = []
    calls: list[int] = []
    for operation in operations:
        # Authenticated, so protected handlers are exercised past the 401; logout would end the
        # session under the other examples, so it runs as an anonymous caller.
        headers = (
            {}
            if "logout" in operation.path
            else {"Authorization": f"Bearer {fresh_token(live_server)}"}
        )
        try:
            conformance_check(operation, mode, live_server, headers, calls)()
        except Unsatisfiable:
            # Nothing to break in an operation without parameters or body.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as failure:  # report every operation, not only the first
            failures.append(f"{operation.label}: {failure}")
    assert failures == []
    assert len(calls) >= len(operations)  # every operation was really called
    if mode is GenerationMode.NEGATIVE:
        assert any(400 <= status < 500 for status in calls)
