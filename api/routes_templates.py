"""Template routes (service keys): register versions, read them, preview renderings.

- ``PUT /v1/templates/{template_id}``: the body is a definition
  (consumers/templates/definition.py). It is checked first — every string compiles,
  every locale renders with its ``example`` — so a template error is a 422 naming the
  place here, never a failed send later. A definition equal to the latest version
  answers 200 with that version; otherwise version latest + 1 is appended
  (``template.registered``, an event of the reserved user ``~templates`` under the
  idempotency key ``tpl:<id>:<version>``): 201 once projected, 202 when the projector
  is behind, 409 when another request registered that version first (read and retry).
- ``GET /v1/templates``: every template id and its latest version.
- ``GET /v1/templates/{template_id}?version=N``: one version (default: the latest).
- ``POST /v1/templates/{template_id}/preview``: ``{"data", "locale", "version"}``
  renders a registered version, or ``{"definition", "data", "locale"}`` a draft (the
  draft is checked as at registration, then rendered with ``data``, default its
  ``example``): the title, body and channel variants a notification would get, and the
  locale chosen (``zh-CN`` → ``zh`` → ``default``).

Publishing with a template is api/routes_publish.py (``"template": id``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from herald.api.appending import count_published
from herald.api.context import PRODUCER, QUERIES, REDIS, SETTINGS
from herald.api.errors import Conflict, NotFound, Unprocessable, field_error
from herald.api.jsonio import json_response
from herald.api.routing import Call, Param, Reply, Route
from herald.consumers.projection.queries import iso
from herald.consumers.projection.versions import VersionTaken, register_version
from herald.consumers.templates.definition import (
    DEFINITION,
    ID_PATTERN,
    LOCALE_PATTERN,
    check_definition,
)
from herald.consumers.templates.render import Rendered, Renderer, TemplateError
from herald.consumers.templates.store import Template, TemplateStore
from herald.streams.events import TEMPLATES_USER, TemplateRegistered
from herald.streams.settings import Settings

TEMPLATES: web.AppKey[TemplateStore] = web.AppKey("templates")
RENDERER: web.AppKey[Renderer] = web.AppKey("renderer")

TEMPLATE_PARAM = Param("template_id", "path", {"type": "string", "pattern": ID_PATTERN}, True,
                       "The template id: 1-64 of a-z 0-9 _ . - (anything else: 404).",
                       match=ID_PATTERN.strip("^$"))
VERSION_QUERY = Param("version", "query", {"type": "integer", "minimum": 1,
                                           "maximum": 1_000_000_000}, False,
                      "A version (default: the latest).")
_VARIANTS = {"type": "object", "additionalProperties": {"type": "object"},
             "description": "channel → its rendered variant."}


def template_problem(exc: TemplateError, prefix: str = "") -> Unprocessable:
    """The 422 of a template that does not compile or render."""
    path = f"{prefix}{exc.path}"
    return Unprocessable(f"{path}: {exc.message}", errors=[field_error(path, exc.message)])


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "TemplateDefinition": DEFINITION,
        "TemplateRegistered": {
            "type": "object", "required": ["id", "version", "created", "status"],
            "properties": {"id": {"type": "string"}, "version": {"type": "integer"},
                           "created": {"type": "boolean", "description": "False: the "
                                       "definition equals the latest version, kept."},
                           "position": {"type": "string"},
                           "status": {"enum": ["projected", "accepted"]}},
        },
        "TemplateVersion": {
            "type": "object", "required": ["id", "version", "latest", "registered_at",
                                           "definition"],
            "properties": {"id": {"type": "string"}, "version": {"type": "integer"},
                           "latest": {"type": "integer"},
                           "registered_at": {"type": ["string", "null"]},
                           "definition": {"type": "object"}},
        },
        "Templates": {
            "type": "object", "required": ["templates"],
            "properties": {"templates": {"type": "array", "items": {
                "type": "object", "required": ["id", "latest"],
                "properties": {"id": {"type": "string"}, "latest": {"type": "integer"}}}}},
        },
        "PreviewRequest": {
            "type": "object", "additionalProperties": False,
            "dependentSchemas": {"version": {"not": {"required": ["definition"]}}},
            "properties": {
                "definition": DEFINITION,
                "version": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000},
                "data": {"type": "object", "description": "The notification's data (default: "
                                                          "the definition's example)."},
                "locale": {"type": "string", "pattern": LOCALE_PATTERN},
            },
            "description": "A registered version (version, default the latest) or a draft "
                           "definition, not both.",
        },
        "Preview": {
            "type": "object",
            "required": ["id", "version", "locale", "title", "body", "variants", "locales"],
            "properties": {"id": {"type": "string"}, "version": {"type": ["integer", "null"]},
                           "locale": {"type": "string"}, "title": {"type": "string"},
                           "body": {"type": "string"}, "variants": _VARIANTS,
                           "locales": {"type": "array", "items": {"type": "string"}}},
        },
    }


def _store(call: Call) -> TemplateStore:
    return call.app[TEMPLATES]


def _version_doc(template: Template) -> dict[str, Any]:
    return {"id": template.id, "version": template.version, "latest": template.latest,
            "registered_at": iso(template.registered_at), "definition": template.definition}


async def put_template(call: Call) -> web.Response:
    tid, definition = call.path["template_id"], call.body
    try:
        check_definition(definition, call.app[RENDERER])
    except TemplateError as exc:
        raise template_problem(exc) from exc
    try:
        done = await register_version(
            _store(call), call.app[PRODUCER], TEMPLATES_USER, tid, definition,
            lambda version: TemplateRegistered(template_id=tid, version=version,
                                               definition=definition), "tpl")
    except VersionTaken as exc:
        raise Conflict(str(exc)) from exc
    if done.appended is None or done.envelope is None:
        return json_response({"id": tid, "version": done.version, "created": False,
                              "status": "projected"})
    appended, version = done.appended, done.version
    count_published(call.app, [done.envelope], [appended])
    projected = await call.app[QUERIES].wait_for(appended.partition, appended.position,
                                                 call.app[SETTINGS].action_wait_s)
    return json_response({"id": tid, "version": version, "created": True,
                          "position": appended.position,
                          "status": "projected" if projected else "accepted"},
                         201 if projected else 202)


async def list_templates(call: Call) -> web.Response:
    return json_response({"templates": await _store(call).list()})


async def get_template(call: Call) -> web.Response:
    found = await _store(call).get(call.path["template_id"], call.query.get("version"))
    if found is None:
        raise NotFound("no such template (or version)")
    return json_response(_version_doc(found))


def _preview_doc(tid: str, version: int | None, definition: dict[str, Any],
                 rendered: Rendered) -> dict[str, Any]:
    return {"id": tid, "version": version, "locale": rendered.locale, "title": rendered.title,
            "body": rendered.body, "variants": rendered.variants,
            "locales": sorted(definition["locales"])}


async def preview_template(call: Call) -> web.Response:
    tid, body = call.path["template_id"], call.body or {}
    renderer = call.app[RENDERER]
    version: int | None = None
    if "definition" in body:
        definition = body["definition"]
        try:
            check_definition(definition, renderer)
        except TemplateError as exc:
            raise template_problem(exc, "definition.") from exc
    else:
        found = await _store(call).get(tid, body.get("version"))
        if found is None:
            raise NotFound("no such template (or version): give a draft definition")
        definition, version = found.definition, found.version
    data = body["data"] if "data" in body else definition.get("example") or {}
    try:
        rendered = renderer.render(definition, body.get("locale"), data)
    except TemplateError as exc:
        raise template_problem(exc, "definition." if "definition" in body else "") from exc
    return json_response(_preview_doc(tid, version, definition, rendered))


def routes(settings: Settings) -> list[Route]:
    tag = "templates"
    one = "/v1/templates/{template_id}"
    return [
        Route("GET", "/v1/templates", list_templates, "templates_list", "Every template", tag,
              "service", {200: Reply("Ids and latest versions, by id.", "Templates")}),
        Route("PUT", one, put_template, "template_put",
              "Register a new version of a template", tag, "service",
              {201: Reply("A new version, projected.", "TemplateRegistered"),
               200: Reply("Equal to the latest version: kept.", "TemplateRegistered"),
               202: Reply("A new version, logged, not yet projected.", "TemplateRegistered")},
              params=(TEMPLATE_PARAM,), body="TemplateDefinition",
              errors=(400, 404, 409, 413, 422),
              description="Every locale is rendered with the definition's example first: a "
                          "template error is a 422 naming its place."),
        Route("GET", one, get_template, "template_get", "One version of a template", tag,
              "service", {200: Reply("The version.", "TemplateVersion")},
              params=(TEMPLATE_PARAM, VERSION_QUERY), errors=(404, 422)),
        Route("POST", f"{one}/preview", preview_template, "template_preview",
              "Render a template (registered or draft) without sending", tag, "service",
              {200: Reply("What a notification would get.", "Preview")},
              params=(TEMPLATE_PARAM,), body="PreviewRequest", body_required=False,
              errors=(400, 404, 413, 422)),
    ]


def setup(app: web.Application) -> None:
    """The template store and the renderer, once the app's Redis client exists."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if TEMPLATES not in app:  # publishing sets it up too (api/routes_publish.py)
            app[TEMPLATES] = TemplateStore(app[REDIS], app[SETTINGS])
            app[RENDERER] = Renderer()
        yield

    app.cleanup_ctx.append(context)
