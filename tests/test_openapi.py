"""The JSON API keeps the contract its /openapi.json states (SQLite and PostgreSQL).

schemathesis generates requests for every /api/v1 operation from the app's own schema and sends
them, as an admin with an API token so every route is reachable, to the app over the review
site's seeded registry. Each answer must not be a 5xx, must use a documented status code, and
must match the documented body. Generation is derandomized and capped per operation, so the
run is deterministic and short. State-changing operations are included: the generated ids
name no task, finding or source of the fixture, so they answer 400/403/404 and change nothing.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from service.config import Settings
from service.web.app import create_app
from tests.test_web_support import review_app

EXAMPLES = 15
"""Generated requests per operation: enough to cover each parameter's shapes, while the whole
file stays well under a minute on both databases."""
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_every_api_operation_keeps_its_documented_contract(registry_engine, tmp_path,
                                                            make_inventory):
    app, site = review_app(registry_engine, tmp_path, make_inventory)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    admin = {"Authorization": f"Bearer {site.tokens['dave']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    api = [operation for operation in operations if operation.path.startswith("/api/v1/")]
    assert len(api) >= 10, [operation.label for operation in operations]
    failures = []
    for operation in api:
        try:
            _exercise(operation, admin)
        except (Exception, BaseExceptionGroup) as exc:  # collected: one run names them all
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def _exercise(operation, headers):
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_api_route_declares_its_errors_and_a_body(tmp_path):
    document = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}")).openapi()
    for path, methods in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in methods.items():
            responses = operation["responses"]
            for status in ("401", "403"):
                assert status in responses, (method, path, status)
                body = responses[status]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
            ok = responses["200"]["content"]["application/json"]["schema"]
            assert ok, (method, path)
