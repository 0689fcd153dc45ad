"""The hub's REST API fuzzed from its own OpenAPI document (schemathesis), with valid and with
invalid requests, on SQLite and PostgreSQL: no 5xx for anything, and every response matches the
document."""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode, checks
from hypothesis import HealthCheck, given, settings

from hub import auth, dispatch
from hub.gridregistry import import_csv
from hub.web import create_app

from .test_gridregistry import SAMPLE
from .test_hub_web import _seed


#: no 5xx, and status codes, content types, headers and bodies as the document says. (Not
#: "positive data acceptance": a schema-valid grid code that names no grid is rightly refused.)
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance]


@pytest.fixture
def api(engine):
    import_csv(engine, SAMPLE)
    _seed(engine)
    for i in range(3):
        dispatch.create_ticket(engine, category="fire", title=f"t{i}", source="manual", grid_code="330102001001001")
    auth.add_user(engine, "admin", "correct horse battery", "admin")
    token = auth.create_token(engine, "admin", "fuzz")
    app = create_app(engine, secret_key="k" * 40, offline_after_s=60,
                     health=lambda: {"broker_connected": True, "ingest": {"malformed": 0}})
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app), token


def test_the_api_never_fails_and_matches_its_document(api):
    schema, token = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    failures = []
    def modes(op):  # an operation with no input has no invalid requests to make
        raw = op.definition.raw
        return list(GenerationMode) if raw.get("parameters") or raw.get("requestBody") else [GenerationMode.POSITIVE]

    for operation, mode in ((op, mode) for op in operations for mode in modes(op)):
        @given(case=operation.as_strategy(mode))
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
        try:
            check()
        except BaseException as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_the_document_and_the_routes_agree(engine):
    """Every API route is in the OpenAPI document with its methods, and the document names no
    route that does not exist (the document is kept by hand: this keeps it honest)."""
    import re
    app = create_app(engine, secret_key="k" * 40)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") or rule.rule == "/healthz":
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    from hub.web.openapi import document
    documented = {(path, method) for path, item in document("t")["paths"].items() for method in item}
    assert routes == documented, (f"undocumented: {sorted(routes - documented)}; "
                                  f"documented but missing: {sorted(documented - routes)}")
