"""The committed docs/openapi.json is current, and the API honours it under fuzzing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from garrison.api import create_app
from garrison.api.openapi import openapi_text

from .conftest import Env

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_is_current() -> None:
    assert OPENAPI.read_text() == openapi_text(), (
        "docs/openapi.json is out of date with the API; regenerate it with "
        "`python -m garrison.api.openapi > docs/openapi.json` and commit the result."
    )


#: The only operations that are not reads of the workspace: they compute over the request.
POSTS = {"/v1/models/{ref}/predict", "/v1/ask"}
#: Listings whose POST creates a record (evaluators' suites and runs).
CREATES = {"/v1/eval/suites", "/v1/eval/runs"}
#: Labeling's routes (garrison.api._label) also change the catalog: their methods by path.
LABEL_METHODS = {
    "/v1/label/labels/{label_id}/accept": {"post"},
    "/v1/label/labels/{label_id}/fix": {"post"},
    "/v1/label/labels/{label_id}/reject": {"post"},
    "/v1/label/projects": {"get", "post"},
    "/v1/label/projects/{name}": {"get"},
    "/v1/label/projects/{name}/export": {"post"},
    "/v1/label/projects/{name}/labels": {"get"},
    "/v1/label/projects/{name}/next": {"post"},
    "/v1/label/projects/{name}/predictions": {"post"},
    "/v1/label/projects/{name}/review/next": {"post"},
    "/v1/label/projects/{name}/stats": {"get"},
    "/v1/label/projects/{name}/tasks": {"get"},
    "/v1/label/tasks/{task_id}/skip": {"post"},
    "/v1/label/tasks/{task_id}/submit": {"post"},
}


def test_every_operation_reads_and_documents_the_error_shape() -> None:
    doc = json.loads(OPENAPI.read_text())
    for path, item in doc["paths"].items():
        default = {"get", "post"} if path in CREATES else {"post" if path in POSTS else "get"}
        methods = LABEL_METHODS.get(path, default)
        assert set(item) == methods, path
        for method in methods:
            if path != "/v1/health":
                assert {"401", "404", "422"} <= set(item[method]["responses"]), path
    assert "413" in doc["paths"]["/v1/models/{ref}/predict"]["post"]["responses"]


@pytest.mark.slow
def test_schemathesis_against_the_committed_schema(env: Env) -> None:
    schema = schemathesis.openapi.from_path(OPENAPI)
    schema.app = create_app(env.path)
    headers = {"Authorization": f"Bearer {env.tokens['ada']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 26 + 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=50,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # Conformance, not latency: a loaded machine may stall one request (an fsync).
            response = case.call(headers=headers, timeout=120)
            assert response.status_code < 500, (case.path, response.text)
            # Semantic validation the schema cannot express (filter values, marking strings)
            # answers 400 in the one error shape; everything else is checked.
            case.validate_response(
                response, headers=headers, excluded_checks=[checks.positive_data_acceptance]
            )

        check()
