"""The templates' projection: ``template.registered`` → the template's hash and the index.

Pure, like every projection (consumers/projection/registry.py): a version's definition
is written once under ``v<n>`` (with ``ts<n>``, its registration time) and becomes the
template's ``latest``; the id joins the index. Versions are never rewritten (the API
appends version n + 1 under the idempotency key ``tpl:<id>:<n+1>``, so two racing
registrations yield one). Keys: streams/keys.py ``template`` and ``template_index``, in
the partition of the reserved user ``~templates``.
"""

from __future__ import annotations

from herald.consumers.projection.base import Context, Projection, Write
from herald.consumers.projection.versions import version_writes
from herald.streams.events import Envelope, TemplateRegistered


def project_template(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: TemplateRegistered = env.payload  # type: ignore[assignment]
    return version_writes(ctx.keys.template(ctx.partition, p.template_id, ctx.ns),
                          ctx.keys.template_index(ctx.partition, ctx.ns), p.template_id,
                          p.version, p.definition, env.time)


PROJECTIONS: dict[str, Projection] = {TemplateRegistered.TYPE: project_template}
