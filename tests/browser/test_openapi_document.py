"""The OpenAPI document validates as OpenAPI 3.1 (every $ref resolves):
the committed file and the one the gateway serves."""

import json

import pytest
from openapi_spec_validator import validate

from conftest import ROOT


def test_committed_document_is_valid_openapi_3_1():
    doc = json.loads((ROOT / "openapi/openapi.json").read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_served_document_is_valid_openapi_3_1(gateway):
    doc = gateway.json("/openapi.json")
    validate(doc)


def test_the_validator_rejects_a_dangling_reference():
    doc = json.loads((ROOT / "openapi/openapi.json").read_text())
    del doc["components"]["schemas"]["SlowConsumerPolicy"]
    # Raised as a validation error or as the resolver's PointerToNowhere.
    with pytest.raises(Exception, match="SlowConsumerPolicy"):
        validate(doc)
