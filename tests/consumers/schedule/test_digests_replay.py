"""Digests end to end, and replay rebuilding schedule and digest state identically."""

from __future__ import annotations

from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier
from herald.streams.events import DigestItemAdded, NotificationCreated, NotificationScheduled
from tests.consumers.helpers.harness import Harness, eventually, now_ms

RANKING = "daily-ranking"


async def test_a_digest_window_becomes_one_inbox_item(h: Harness) -> None:
    h.start_projector()
    h.start_scheduler("s1")
    window_end = now_ms() + 800
    ids = []
    for i in range(5):
        appended = await h.publish("erin", DigestItemAdded(
            title=f"#{i + 1} team {i}", category="ranking", data={"rank": i + 1},
            digest_key=RANKING, window_end=window_end))
        ids.append(appended.id)
    await h.projected("erin")
    assert (await h.queries.page("erin")).items == []  # collected, not yet sent
    summary = await eventually(lambda: h.queries.item("erin", ids[0]))
    assert summary["title"].startswith("5 updates: #1 team 0, #2 team 1")
    listed = summary["data"]["digest"]
    assert [i["id"] for i in listed["items"]] == ids and listed["count"] == 5
    assert [i["data"]["rank"] for i in listed["items"]] == [1, 2, 3, 4, 5]
    created = [e for _, e in await h.log("erin") if isinstance(e.payload, NotificationCreated)]
    assert len(created) == 1
    await h.projected("erin")
    assert len((await h.queries.page("erin")).items) == 1
    p = h.producer.partition("erin")
    assert await h.redis.hlen(h.keys.digest(p, "erin", RANKING)) == 0
    assert await h.redis.zcard(h.keys.digests_due(p)) == 0

    # An item that arrives after its window closed is not lost: it gets its own summary.
    late = await h.publish("erin", DigestItemAdded(title="late entry", digest_key=RANKING,
                                                   window_end=window_end))
    second = await eventually(lambda: h.queries.item("erin", late.id))
    assert second["title"] == "1 update: late entry"
    assert len((await h.queries.page("erin")).items) == 2


async def test_replay_rebuilds_schedule_and_digest_state_identically(h: Harness) -> None:
    h.start_projector()
    h.start_scheduler("s1")
    soon, later = now_ms() + 400, now_ms() + 3_600_000
    fired = await h.publish("fay", NotificationScheduled(title="fires", deliver_at=soon))
    dropped = await h.publish("fay", NotificationScheduled(title="dropped", deliver_at=soon,
                                                           cancel_key="x"))
    waiting = await h.publish("gus", NotificationScheduled(title="waits", deliver_at=later,
                                                           cancel_key="y"))
    await h.publish("gus", NotificationScheduled(title="cancelled, not yet due",
                                                 deliver_at=later, cancel_key="z"))
    await h.canceller.cancel("fay", "x")
    await h.canceller.cancel("gus", "z")
    for i in range(3):
        await h.publish("fay", DigestItemAdded(title=f"closed {i}", digest_key="d",
                                               window_end=soon))
        await h.publish("gus", DigestItemAdded(title=f"open {i}", digest_key="d",
                                               window_end=later))
    await eventually(lambda: h.queries.item("fay", fired.id))
    await eventually(lambda: h.dropped_for("fay", dropped.id))
    await eventually(lambda: _digest_summary(h, "fay"))
    for user in ("fay", "gus"):
        await h.projected(user)
    p_gus = h.producer.partition("gus")
    assert await h.redis.zscore(h.keys.schedule(p_gus), waiting.id) == later
    assert await h.redis.hlen(h.keys.digest(p_gus, "gus", "d")) == 3

    report = await Verifier(h.redis, h.settings).run()
    assert report.identical, report.differences
    assert report.compared_keys >= 10
    # The comparison covers schedule and digest keys: a tampered one is reported.
    await h.redis.hdel(h.keys.digest(p_gus, "gus", "d"), *(await h.redis.hkeys(
        h.keys.digest(p_gus, "gus", "d")))[:1])
    tampered = await Verifier(h.redis, h.settings).run()
    assert any("digest:gus:d" in line for line in tampered.differences), tampered.differences

    # A full replay switches the view; a reminder scheduled before it fires once after it.
    pending = await h.publish("fay", NotificationScheduled(title="after replay",
                                                           deliver_at=now_ms() + 1500))
    await h.projected("fay")
    await Replay(h.redis, h.settings).run()
    await eventually(lambda: h.queries.item("fay", pending.id), within_s=10)
    assert len(await h.created_for("fay", pending.id)) == 1
    assert await h.redis.zscore(h.keys.schedule(p_gus, "v"), waiting.id) is None  # old ns gone
    views = await h.queries.views.read([p_gus])
    assert await h.redis.zscore(h.keys.schedule(p_gus, views[p_gus]), waiting.id) == later


async def _digest_summary(h: Harness, user: str) -> bool:
    return any(isinstance(e.payload, NotificationCreated) and e.payload.digest_of is not None
               for _, e in await h.log(user))


async def test_a_digest_summary_is_written_in_the_users_locale(h: Harness) -> None:
    """The built-in words in Chinese for a zh-CN user; a registered ``digest`` template
    in the user's locale for another; each summary records the template it used."""
    from herald.streams.events import TEMPLATES_USER, ContactChanged, TemplateRegistered

    h.start_projector()
    h.start_scheduler("s1")
    await h.publish("mei", ContactChanged(kind="locale", value="zh-CN"))
    await h.publish(TEMPLATES_USER, TemplateRegistered(
        template_id="digest.orders", version=1, definition={
            "locales": {"default": {"title": "{{ count }} order updates"},
                        "fr": {"title": "{{ count }} {{ plural(count, one='commande', "
                                        "other='commandes') }}"}},
            "example": {"count": 1}}))
    await h.publish("luc", ContactChanged(kind="locale", value="fr-CA"))
    await h.projected("mei")
    await h.projected("luc")
    await h.projected(TEMPLATES_USER)
    window_end = now_ms() + 600
    first = [await h.publish("mei", DigestItemAdded(title=f"订单 {i}", digest_key="daily",
                                                    window_end=window_end)) for i in range(3)]
    other = [await h.publish("luc", DigestItemAdded(title=f"c{i}", digest_key="orders",
                                                    window_end=window_end)) for i in range(2)]
    mei = await eventually(lambda: h.queries.item("mei", first[0].id))
    assert mei["title"] == "3 条更新：订单 0、订单 1、订单 2"
    luc = await eventually(lambda: h.queries.item("luc", other[0].id))
    assert luc["title"] == "2 commandes"
    refs = {e.user: e.payload.template for _, e in await h.log("mei") + await h.log("luc")
            if isinstance(e.payload, NotificationCreated) and e.payload.digest_of}
    assert refs == {"mei": {"id": "digest", "version": 0, "locale": "zh"},
                    "luc": {"id": "digest.orders", "version": 1, "locale": "fr"}}
