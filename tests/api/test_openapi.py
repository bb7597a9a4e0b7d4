"""The OpenAPI document matches the app: same routes both ways, valid schemas, real errors."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import schemathesis
from aiohttp import web

from herald.api.app import DEFAULT_MODULES, create_app
from herald.api.openapi import problem_statuses
from herald.api.routing import Call, Reply, Route
from herald.streams.settings import Settings
from tests.api.conftest import ApiClient

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    """The app's operations; the HEAD beside every GET (api/routing.py) is not documented,
    so it is checked here and left out."""
    served = {(route.method.lower(), route.resource.canonical)
              for route in app.router.routes() if route.resource is not None}
    gets = {path for method, path in served if method == "get"}
    assert {path for method, path in served if method == "head"} == gets
    return {(method, path) for method, path in served if method != "head"}


def doc_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in doc["paths"].items() for method in ops
            if method in METHODS}


async def test_every_route_is_documented_and_vice_versa(api: ApiClient) -> None:
    served = (await api.get("/openapi.json", auth=None)).body
    app = api.serving.runner.app  # the app answering these requests
    assert app_operations(app) == doc_operations(served)
    mine = {("post", "/v1/notifications"), ("post", "/v1/notifications/batch"),
            ("delete", "/v1/scheduled/{cancel_key}"), ("get", "/v1/users/{user}/inbox"),
            ("get", "/v1/users/{user}/unread_count"), ("post", "/v1/users/{user}/inbox/read_all"),
            ("delete", "/v1/users/{user}/inbox/{id}"), ("get", "/healthz"), ("get", "/readyz"),
            ("get", "/metrics"), ("get", "/openapi.json"),
            *{("post", f"/v1/users/{{user}}/inbox/{{id}}/{verb}")
              for verb in ("read", "unread", "archive")}}
    assert mine <= doc_operations(served)


async def test_extension_modules_are_served_and_documented(api_settings: Settings) -> None:
    async def hello(call: Call) -> web.Response:
        return web.json_response({"status": "ok"})

    class Extra:
        def routes(self, settings: Settings) -> list[Route]:
            return [Route("GET", "/v1/hello", hello, "hello", "Hello", "extra", "user",
                          {200: Reply("ok", "Health")})]

    app = create_app(api_settings, modules=(*DEFAULT_MODULES, Extra()))
    from herald.api.context import OPENAPI

    doc = app[OPENAPI]
    assert app_operations(app) == doc_operations(doc)
    assert doc["paths"]["/v1/hello"]["get"]["security"] == [{"serviceKey": []}, {"userToken": []}]


def test_document_loads_and_schemas_are_valid(api_settings: Settings) -> None:
    from herald.api.context import OPENAPI

    doc = create_app(api_settings)[OPENAPI]
    assert doc["openapi"].startswith("3.1")
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    loaded = schemathesis.openapi.from_dict(doc)
    operations = [op.ok() for op in loaded.get_all_operations()]
    assert {(op.method.lower(), op.path) for op in operations} == doc_operations(doc)


def test_documented_errors_follow_the_route(api_settings: Settings) -> None:
    from herald.api.context import OPENAPI
    from herald.api.routing import ROUTES

    app = create_app(api_settings)
    doc = app[OPENAPI]
    by_id = {r.operation_id: r for r in app[ROUTES]}
    assert set(problem_statuses(by_id["publish"])) >= {400, 401, 403, 413, 422, 429, 503}
    assert 401 not in problem_statuses(by_id["healthz"])
    assert 404 in problem_statuses(by_id["inbox_read"])
    inbox = doc["paths"]["/v1/users/{user}/inbox"]["get"]
    assert {p["name"] for p in inbox["parameters"]} == {"user", "status", "limit", "cursor",
                                                       "after", "wait", "as_of"}
    limit = next(p for p in inbox["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == api_settings.max_page
    too_many = doc["paths"]["/v1/notifications"]["post"]["responses"]["429"]
    assert too_many["headers"]["Retry-After"]["required"] is True
    assert too_many["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"}


async def test_answers_match_documented_schemas(api: ApiClient) -> None:
    """A few real answers validate against the document's schemas (more in schemathesis)."""
    doc = (await api.get("/openapi.json", auth=None)).body
    registry = jsonschema_rs.Registry([("urn:herald", doc)])

    def conforms(value: Any, name: str) -> bool:
        validator = jsonschema_rs.validator_for(
            {"$ref": f"urn:herald#/components/schemas/{name}"}, registry=registry)
        return bool(validator.is_valid(value))

    published = await api.publish("ivan", "hi")
    assert conforms(published.body, "Published")
    assert conforms((await api.get("/v1/users/ivan/inbox")).body, "InboxPage")
    assert conforms((await api.get("/v1/users/ivan/unread_count")).body, "UnreadCount")
    assert conforms((await api.get("/v1/users/ivan/inbox?limit=0")).body, "Problem")
    assert conforms((await api.get("/healthz")).body, "Health")
    assert not conforms({"unread_count": -1}, "UnreadCount")


def test_patterns_mean_the_same_to_clients_and_to_the_server(api_settings: Settings) -> None:
    """Every pattern of the document is an ECMA regex to a client and a Python one to
    Herald's own checks; the shorthand classes (\\s, \\S, \\w, \\d…) and \\b differ
    between the two (Python's \\s takes \\x1c-\\x1f and \\x85, ECMA's does not), so a
    request a generated client finds valid was refused (schemathesis, ST202)."""
    import re

    from herald.api.context import OPENAPI

    def patterns(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
            return found + [p for v in node.values() for p in patterns(v)]
        if isinstance(node, list):
            return [p for v in node for p in patterns(v)]
        return []

    found = patterns(create_app(api_settings)[OPENAPI])
    assert len(found) > 10
    shorthand = re.compile(r"(?<!\\)(?:\\\\)*\\[sSwWdDbB]")
    assert [p for p in found if shorthand.search(p)] == []
