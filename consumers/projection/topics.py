"""The topic projection: who follows which topic (pure functions ``event → writes``).

State (per partition, in the projection's namespace; keys in streams/keys.py):

- ``Keys.user_topics(p, user)`` — set: the topics a user follows (``GET …/topics``).
- ``Keys.tenant_users(p, tenant)`` — set: the users of partition ``p`` (of one tenant)
  who ever had a notification or followed a topic: what a broadcast reaches.
- ``Keys.topic_members(p, tenant, topic)`` — set: the users of partition ``p`` (of one
  tenant) who follow ``topic``. A topic's subscribers are spread over every partition
  like their users; each share lives in its partition's slot, so a subscribe is one
  atomic step on one slot, and a fan-out (consumers/fanout/) reads partition by
  partition — never a cross-slot script.

Transitions (log order, decided by the event alone): ``topic.subscribed`` adds the user
to both sets, ``topic.unsubscribed`` removes it; ``user.erased`` leaves every topic
(the ``erase_topics`` op, which reads the user's topics in the apply script).
"""

from __future__ import annotations

from herald.consumers.projection.base import Context, Projection, Write
from herald.streams import tenants
from herald.streams.events import Envelope, TopicSubscribed, TopicUnsubscribed


def _sets(env: Envelope, topic: str, ctx: Context) -> tuple[str, str]:
    k, p, ns = ctx.keys, ctx.partition, ctx.ns
    return (k.user_topics(p, env.user, ns),
            k.topic_members(p, tenants.tenant_of(env.user), topic, ns))


def project_known(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """The user joins their tenant's known users (a broadcast's recipients)."""
    known = ctx.keys.tenant_users(ctx.partition, tenants.tenant_of(env.user), ctx.ns)
    return [("call", "SADD", known, env.user)]


def project_subscribed(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: TopicSubscribed = env.payload  # type: ignore[assignment]
    mine, members = _sets(env, p.topic, ctx)
    return [("call", "SADD", mine, p.topic), ("call", "SADD", members, env.user),
            *project_known(env, position, ctx)]


def project_unsubscribed(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: TopicUnsubscribed = env.payload  # type: ignore[assignment]
    mine, members = _sets(env, p.topic, ctx)
    return [("call", "SREM", mine, p.topic), ("call", "SREM", members, env.user)]


def project_erased(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """The user leaves every topic: ``("erase_topics", user topics, members prefix)``."""
    k, p, ns = ctx.keys, ctx.partition, ctx.ns
    tenant = tenants.tenant_of(env.user)
    return [("erase_topics", k.user_topics(p, env.user, ns), k.topic_members(p, tenant, "", ns)),
            ("call", "SREM", k.tenant_users(p, tenant, ns), env.user)]


PROJECTIONS: dict[str, Projection] = {
    TopicSubscribed.TYPE: project_subscribed,
    TopicUnsubscribed.TYPE: project_unsubscribed,
}
