"""Workflow routes (service keys): definitions, triggers, business events, explain.

- ``PUT /v1/workflows/{workflow_key}``: the body is a definition
  (consumers/workflows/definition.py), checked first — every error at once, each with
  its path, in one 422. A definition equal to the latest version answers 200 with it;
  otherwise version latest + 1 is appended (``workflow.registered``, an event of the
  reserved user ``~workflows``, idempotency key ``wf:<key>:<version>``): 201 once
  projected, 202 when the projector is behind, 409 when another request registered
  that version first. Runs keep the version they started with.
- ``GET /v1/workflows`` and ``GET /v1/workflows/{workflow_key}?version=N``.
- ``POST /v1/workflows/{workflow_key}/trigger``: ``to`` (a user or a list of up to
  :data:`MAX_RECIPIENTS`), ``data``, ``idempotency_key``, ``cancel_key``, ``version``
  (default the latest): one ``workflow.triggered`` per recipient, on the recipient's
  partition; the run id is the event id. A repeated idempotency key answers the first
  runs (``duplicate``).
- ``POST /v1/business-events``: ``type`` (``order.paid``), ``user``, ``data``,
  ``idempotency_key``: a ``business.event`` of the user, what waits and ``cancel_on``
  match.
- ``GET /v1/workflow-runs/{run_id}``: the run's timeline and why
  (consumers/workflows/explain.py); a notification id a run sent answers its run.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from herald.api.appending import count_published
from herald.api.auth import valid_user
from herald.api.context import PRODUCER, QUERIES, REDIS, SETTINGS
from herald.api.errors import Conflict, NotFound, Unprocessable, field_error
from herald.api.jsonio import json_response
from herald.api.routes_templates import RENDERER, TEMPLATES
from herald.api.routing import Call, Param, Reply, Route
from herald.api.schemas import KEY, USER
from herald.consumers.projection.queries import iso
from herald.consumers.templates.render import Renderer
from herald.consumers.templates.store import TemplateStore
from herald.consumers.workflows import registration
from herald.consumers.workflows.definition import DEFINITION, EVENT_PATTERN, KEY_PATTERN
from herald.consumers.workflows.explain import Explainer
from herald.consumers.workflows.store import Workflow, WorkflowStore
from herald.streams import tenants
from herald.streams.errors import ValidationError
from herald.streams.events import BusinessEventReceived, WorkflowTriggered
from herald.streams.settings import Settings

WORKFLOWS: web.AppKey[WorkflowStore] = web.AppKey("workflows")
EXPLAINER: web.AppKey[Explainer] = web.AppKey("workflow_explainer")
MAX_RECIPIENTS = 1000

KEY_PARAM = Param("workflow_key", "path", {"type": "string", "pattern": KEY_PATTERN}, True,
                  "The workflow's key: 1-64 of a-z 0-9 _ . - (anything else: 404).",
                  match=KEY_PATTERN.strip("^$"))
VERSION_QUERY = Param("version", "query", {"type": "integer", "minimum": 1,
                                           "maximum": 1_000_000_000}, False,
                      "A version (default: the latest).")
RUN_PARAM = Param("run_id", "path", {"type": "string", "pattern": r"^[0-9A-Z]{26}$"}, True,
                  "A run id (its trigger's event id), or the id of a notification a run "
                  "sent.", match="[0-9A-Z]{26}")
_DATA = {"type": "object", "maxProperties": 100,
         "description": "The run's data: what conditions and templates read."}


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    appended = {"type": "object", "required": ["user", "run_id", "position", "duplicate"],
                "properties": {"user": {"type": "string"}, "run_id": {"type": "string"},
                               "position": {"type": "string"},
                               "duplicate": {"type": "boolean"}}}
    return {
        "WorkflowDefinition": DEFINITION,
        "WorkflowRegistered": {
            "type": "object", "required": ["key", "version", "created", "status"],
            "properties": {"key": {"type": "string"}, "version": {"type": "integer"},
                           "created": {"type": "boolean"}, "position": {"type": "string"},
                           "status": {"enum": ["projected", "accepted"]}}},
        "WorkflowVersion": {
            "type": "object",
            "required": ["key", "version", "latest", "registered_at", "definition"],
            "properties": {"key": {"type": "string"}, "version": {"type": "integer"},
                           "latest": {"type": "integer"},
                           "registered_at": {"type": ["string", "null"]},
                           "definition": {"type": "object"}}},
        "Workflows": {
            "type": "object", "required": ["workflows"],
            "properties": {"workflows": {"type": "array", "items": {
                "type": "object", "required": ["key", "latest"],
                "properties": {"key": {"type": "string"}, "latest": {"type": "integer"}}}}}},
        "WorkflowTrigger": {
            "type": "object", "additionalProperties": False, "required": ["to"],
            "properties": {
                "to": {"anyOf": [USER, {"type": "array", "items": USER, "minItems": 1,
                                        "maxItems": MAX_RECIPIENTS, "uniqueItems": True}],
                       "description": "One user or a list: one run per recipient."},
                "data": _DATA, "idempotency_key": KEY, "cancel_key": KEY,
                "version": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000}}},
        "WorkflowTriggered": {
            "type": "object", "required": ["key", "version", "runs"],
            "properties": {"key": {"type": "string"}, "version": {"type": "integer"},
                           "runs": {"type": "array", "items": appended}}},
        "BusinessEvent": {
            "type": "object", "additionalProperties": False, "required": ["type", "user"],
            "properties": {"type": {"type": "string", "pattern": EVENT_PATTERN,
                                    "description": "The event's type, e.g. order.paid."},
                           "user": USER, "data": _DATA, "idempotency_key": KEY}},
        "BusinessEventAppended": {
            "type": "object", "required": ["id", "position", "partition", "duplicate"],
            "properties": {"id": {"type": "string"}, "position": {"type": "string"},
                           "partition": {"type": "integer"},
                           "duplicate": {"type": "boolean"}}},
        "WorkflowRun": {
            "type": "object",
            "required": ["run_id", "workflow", "version", "user", "status", "timeline",
                         "missing"],
            "properties": {"run_id": {"type": "string"}, "workflow": {"type": "string"},
                           "version": {"type": "integer"}, "user": {"type": "string"},
                           "status": {"type": "string"},
                           "cancel_key": {"type": ["string", "null"]},
                           "timeline": {"type": "array", "items": {"type": "object"}},
                           "missing": {"type": "integer"}}},
    }


def _tenant(call: Call) -> str:
    return call.principal.tenant if call.principal is not None else tenants.DEFAULT


def _version_doc(found: Workflow) -> dict[str, Any]:
    return {"key": found.id, "version": found.version, "latest": found.latest,
            "registered_at": iso(found.registered_at), "definition": found.definition}


def _invalid(exc: registration.DefinitionInvalid) -> Unprocessable:
    return Unprocessable(f"the workflow is not valid: {exc}", errors=[
        field_error(path, message) for path, message in exc.errors])


async def _checked(app: web.Application, definition: Any) -> None:
    try:
        await registration.check(definition, app[TEMPLATES], app[RENDERER])
    except registration.DefinitionInvalid as exc:
        raise _invalid(exc) from exc


async def explain_definition(app: web.Application, body: Any) -> None:
    """A definition the schema refused: every error in the words of the definition."""
    if isinstance(body, dict):
        await _checked(app, body)


async def put_workflow(call: Call) -> web.Response:
    key, definition = call.path["workflow_key"], call.body
    try:  # checked first (every error by path), then appended
        done = await registration.register(call.app[PRODUCER], call.app[WORKFLOWS],
                                           call.app[TEMPLATES], call.app[RENDERER], key,
                                           definition)
    except registration.DefinitionInvalid as exc:
        raise _invalid(exc) from exc
    except registration.VersionTaken as exc:
        raise Conflict(str(exc)) from exc
    if done.appended is None or done.envelope is None:
        return json_response({"key": key, "version": done.version, "created": False,
                              "status": "projected"})
    appended = done.appended
    count_published(call.app, [done.envelope], [appended])
    projected = await call.app[QUERIES].wait_for(appended.partition, appended.position,
                                                 call.app[SETTINGS].action_wait_s)
    return json_response({"key": key, "version": done.version, "created": True,
                          "position": appended.position,
                          "status": "projected" if projected else "accepted"},
                         201 if projected else 202)


async def list_workflows(call: Call) -> web.Response:
    found = await call.app[WORKFLOWS].list()
    return json_response({"workflows": [{"key": w["id"], "latest": w["latest"]}
                                        for w in found]})


async def get_workflow(call: Call) -> web.Response:
    found = await call.app[WORKFLOWS].get(call.path["workflow_key"], call.query.get("version"))
    if found is None:
        raise NotFound("no such workflow (or version)")
    return json_response(_version_doc(found))


def _run_key(idempotency_key: str, user: str) -> str:
    """Idempotency key of one recipient's run of a keyed trigger."""
    digest = hashlib.blake2b(f"{idempotency_key}\0{user}".encode(), digest_size=16)
    return "wft:" + digest.hexdigest()


def _user(value: str, path: str, tenant: str) -> str:
    try:
        return tenants.scoped(tenant, valid_user(value, path))
    except ValidationError as exc:
        raise Unprocessable(f"{path}: {exc.message}", errors=[field_error(path, exc.message)]) \
            from exc


async def trigger(call: Call) -> web.Response:
    key, body = call.path["workflow_key"], call.body
    found = await call.app[WORKFLOWS].get(key, body.get("version"))
    if found is None:
        raise NotFound("no such workflow (or version)")
    tenant = _tenant(call)
    to = body["to"] if isinstance(body["to"], list) else [body["to"]]
    users = [_user(u, "to" if isinstance(body["to"], str) else f"to.{i}", tenant)
             for i, u in enumerate(to)]
    producer = call.app[PRODUCER]
    envelopes = [producer.envelope(user, WorkflowTriggered(
        workflow_key=key, version=found.version, data=body.get("data", {}),
        cancel_key=body.get("cancel_key")),
        idempotency_key=_run_key(body["idempotency_key"], user)
        if "idempotency_key" in body else None) for user in users]
    try:
        done = await producer.publish_many(envelopes)
    except ValidationError as exc:
        raise Unprocessable(f"{exc.field}: {exc.message}",
                            errors=[field_error(exc.field, exc.message)]) from exc
    count_published(call.app, envelopes, done)
    if any(a.conflict for a in done):
        raise Conflict("the idempotency key was used for another trigger")
    runs = [{"user": tenants.split(user)[1],
             "run_id": a.id, "position": a.position, "duplicate": a.duplicate}
            for user, a in zip(users, done, strict=True)]
    created = not all(a.duplicate for a in done)
    return json_response({"key": key, "version": found.version, "runs": runs},
                         201 if created else 200)


async def business_event(call: Call) -> web.Response:
    body = call.body
    user = _user(body["user"], "user", _tenant(call))
    producer = call.app[PRODUCER]
    envelope = producer.envelope(user, BusinessEventReceived(
        name=body["type"], data=body.get("data", {})),
        idempotency_key=body.get("idempotency_key"))
    try:
        [done] = await producer.publish_many([envelope])
    except ValidationError as exc:
        raise Unprocessable(f"{exc.field}: {exc.message}",
                            errors=[field_error(exc.field, exc.message)]) from exc
    if done.conflict:
        raise Conflict("the idempotency key was used for another event")
    count_published(call.app, [envelope], [done])
    return json_response({"id": done.id, "position": done.position,
                          "partition": done.partition, "duplicate": done.duplicate},
                         200 if done.duplicate else 201)


async def get_run(call: Call) -> web.Response:
    doc = await call.app[EXPLAINER].explain(call.path["run_id"])
    tenant = _tenant(call)
    if doc is not None and tenant != tenants.DEFAULT:
        owner, user = tenants.split(doc["user"])
        doc = {**doc, "user": user} if owner == tenant else None
    if doc is None:
        raise NotFound("no such run (an id of a run, or of a notification a run sent)")
    return json_response(doc)


def routes(settings: Settings) -> list[Route]:
    tag = "workflows"
    one = "/v1/workflows/{workflow_key}"
    return [
        Route("GET", "/v1/workflows", list_workflows, "workflows_list", "Every workflow", tag,
              "service", {200: Reply("Keys and latest versions, by key.", "Workflows")}),
        Route("PUT", one, put_workflow, "workflow_put",
              "Register a new version of a workflow", tag, "service",
              {201: Reply("A new version, projected.", "WorkflowRegistered"),
               200: Reply("Equal to the latest version: kept.", "WorkflowRegistered"),
               202: Reply("A new version, logged, not yet projected.", "WorkflowRegistered")},
              params=(KEY_PARAM,), body="WorkflowDefinition", errors=(400, 404, 409, 413, 422),
              explain_body=explain_definition,
              description="Checked first: every error (unknown step types, duplicate ids, "
                          "conditions that do not compile or name a later step, waits "
                          "without a timeout, templates that do not exist or do not render "
                          "with example) in one 422, each with its path."),
        Route("GET", one, get_workflow, "workflow_get", "One version of a workflow", tag,
              "service", {200: Reply("The version.", "WorkflowVersion")},
              params=(KEY_PARAM, VERSION_QUERY), errors=(404, 422)),
        Route("POST", f"{one}/trigger", trigger, "workflow_trigger",
              "Start one run per recipient", tag, "service",
              {201: Reply("Runs started.", "WorkflowTriggered"),
               200: Reply("A repeated idempotency key: the first runs.", "WorkflowTriggered")},
              params=(KEY_PARAM,), body="WorkflowTrigger", errors=(400, 404, 409, 413, 422)),
        Route("POST", "/v1/business-events", business_event, "business_event",
              "Append a business event (what waits and cancel_on match)", tag, "service",
              {201: Reply("Appended.", "BusinessEventAppended"),
               200: Reply("A repeated idempotency key: the first append.",
                          "BusinessEventAppended")},
              body="BusinessEvent", errors=(400, 409, 413, 422)),
        Route("GET", "/v1/workflow-runs/{run_id}", get_run, "workflow_run_get",
              "A run's timeline: each step, when, and why", tag, "service",
              {200: Reply("The run and its timeline.", "WorkflowRun")},
              params=(RUN_PARAM,), errors=(404,)),
    ]


def setup(app: web.Application) -> None:
    """The definition store and the explainer, once the app's Redis client exists."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[WORKFLOWS] = WorkflowStore(app[REDIS], app[SETTINGS])
        app[EXPLAINER] = Explainer(app[REDIS], app[SETTINGS])
        if TEMPLATES not in app:
            app[TEMPLATES] = TemplateStore(app[REDIS], app[SETTINGS])
            app[RENDERER] = Renderer()
        yield

    app.cleanup_ctx.append(context)
