"""The served OpenAPI: FastAPI's schema plus, documented once here, the error answers and links every route shares.

FastAPI documents the success answer of each route and a 422 in its own shape; Prism answers every
error in one body (``{"status", "code", "message", "field"}``, ``infra.http.app.error_body``). This module
gives that body one schema, ``Error``, and adds to each operation the statuses it can answer, decided
from what the generated operation declares (a security requirement, parameters, a body, its tags)
rather than listed per route. It also links each command that answers an aggregate's id to the
routes that take that id, so that a client (or schemathesis' stateful phase) can follow them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

#: What each status means, once for every route that can answer it.
MEANINGS = {
    400: "Bad request: X-Tenant-ID sent more than once, or a query the route refuses (the message says which)",
    401: "The credential is missing, malformed, unknown, revoked or expired",
    403: "The credential is valid but lacks the route's scope, or X-Tenant-ID names another tenant",
    404: "Not found in the caller's tenant (or not projected yet)",
    409: "Conflict with the current state: version_conflict, illegal_transition, idempotency_mismatch, duplicate",
    413: "The request body is larger than the limit (code too_large)",
    422: "A parameter or the body is invalid (field names which)",
    429: "Too many queries at once; retry after Retry-After seconds",
    503: "A store the route needs is down or did not answer within PRISM_STORE_TIMEOUT_SECONDS (code unavailable; "
    "the message names the store), or every write-database connection is busy (code busy); nothing was done: retry "
    "after Retry-After seconds",
}
#: Headers that come with a status, whatever the route.
HEADERS = {
    401: {"WWW-Authenticate": {"description": "Always `Bearer`", "required": True, "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
}
#: Tags whose POST routes change state, and so can conflict with it.
CHANGING_TAGS = {"commands", "tenants", "operations"}
#: Statuses particular to one route.
PARTICULAR: dict[tuple[str, str], set[int]] = {
    ("post", "/analytics/sql"): {400, 429},  # SQL the parser refuses; too many queries at once
    ("post", "/orders"): {404},  # the customer or a product is not the tenant's
    ("get", "/ready"): {503},
}
#: The aggregates whose commands answer ``{id, version}``: the path parameter that takes that id.
AGGREGATES = {"/orders": "order_id", "/customers": "customer_id", "/products": "product_id"}


class Error(BaseModel):
    """Every error Prism answers, whatever the route."""

    status: int = Field(description="The HTTP status, repeated", examples=[404])
    code: str = Field(description="What went wrong, for programs", examples=["not_found"])
    message: str = Field(description="What went wrong, for people")
    field: str | None = Field(description="The parameter or body field to blame, when one is")


class Readiness(BaseModel):
    """Whether every store answers, and what the ones that do not said."""

    status: str = Field(examples=["unavailable"])
    failed: dict[str, str] = Field(description="Per store that did not answer, the error")


def schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI, built on the first call and kept: ``app.openapi = lambda: schema(app)``."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
        app.openapi_schema = with_links(with_errors(spec))
    return app.openapi_schema


def with_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation's error statuses, each answering the shared ``Error`` body."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = Error.model_json_schema()
    schemas["Readiness"] = Readiness.model_json_schema()
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        for status in sorted(statuses(path, method, operation)):
            responses[str(status)] = _error_response(status, "Readiness" if path == "/ready" else "Error")
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, which Prism never answers
        schemas.pop(unused, None)
    return spec


def statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses one operation can answer, from what it declares."""
    found = set(PARTICULAR.get((method, path), set()))
    parameters = operation.get("parameters", [])
    if operation.get("security"):  # the credential check (keys live in the write database), and X-Tenant-ID
        found |= {400, 401, 403, 503}
    if "requestBody" in operation:
        found |= {413, 422}
    if parameters:
        found.add(422)
    if any(parameter["in"] == "path" for parameter in parameters):
        found.add(404)
    if method == "post" and CHANGING_TAGS & set(operation.get("tags", [])):
        found.add(409)
    return found


def with_links(spec: dict[str, Any]) -> dict[str, Any]:
    """From each command answering an aggregate's id, links to every route that takes that id."""
    for prefix, name in AGGREGATES.items():
        targets = [
            (path, method, operation)
            for path, method, operation in _operations(spec)
            if path.startswith(f"{prefix}/{{{name}}}")
        ]
        for path, method, operation in _operations(spec):
            answered = _accepted(operation)
            if method == "post" and (path == prefix or path.startswith(f"{prefix}/{{")) and answered:
                links = operation["responses"][answered].setdefault("links", {})
                for _, _, target in targets:
                    links[target["summary"].replace(" ", "")] = _link(spec, name, target)
    return spec


def _link(spec: dict[str, Any], name: str, target: dict[str, Any]) -> dict[str, Any]:
    link: dict[str, Any] = {"operationId": target["operationId"], "parameters": {name: "$response.body#/id"}}
    if "expected_version" in _body_properties(spec, target):  # the next change is decided on this version
        link["requestBody"] = {"expected_version": "$response.body#/version"}
    return link


def _accepted(operation: dict[str, Any]) -> str | None:
    """The success status of a command answering ``{id, version, position}``, if it is one."""
    for status in ("201", "200"):
        content = operation["responses"].get(status, {}).get("content", {}).get("application/json", {})
        if content.get("schema", {}).get("$ref", "").endswith("/Accepted"):
            return status
    return None


def _body_properties(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in body:
        body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return body.get("properties", {})


def _error_response(status: int, model: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": MEANINGS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _operations(spec: dict[str, Any]):
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            yield path, method, operation
