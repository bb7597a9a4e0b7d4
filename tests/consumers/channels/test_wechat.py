"""WeChat channel against a WeChat-shaped API on 127.0.0.1, token cached in real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from herald.consumers.channels.base import Outcome
from herald.consumers.channels.wechat import WeChatChannel, clip_field
from herald.consumers.channels.wechat_token import REFRESH_MARGIN_S, token_ttl_ms
from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import SHORT_TIMEOUT_S, FakeWeChat, Reply
from tests.consumers.helpers.messages import CHINESE_BODY, CHINESE_TITLE, message

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def configured(settings: Settings, wechat: FakeWeChat, **changes: object) -> Settings:
    values: dict[str, object] = {
        "wechat_base_url": wechat.url,
        "wechat_appid": wechat.appid,
        "wechat_secret": wechat.secret,
        "wechat_template_id": "TPL-order-shipped",
        "wechat_title_field": "thing1",
        "wechat_body_field": "thing2",
    }
    values.update(changes)
    return settings.replace(**values)


@pytest.fixture
async def channel(
    channel_settings: Settings, wechat: FakeWeChat, redis: Any
) -> AsyncIterator[WeChatChannel]:
    chan = WeChatChannel(configured(channel_settings, wechat), redis)
    try:
        yield chan
    finally:
        await chan.aclose()


def sent_bodies(wechat: FakeWeChat) -> list[dict[str, Any]]:
    return [orjson.loads(got.body) for got in wechat.received]


async def test_success_fetches_one_token_and_caches_it_in_redis(
    channel: WeChatChannel, wechat: FakeWeChat, redis: Any, channel_settings: Settings
) -> None:
    first = await channel.send(message("wechat", OPENID))
    second = await channel.send(
        message("wechat", OPENID, notification_id="01HZX3J4K5M6N7P8Q9R0S1T2V4")
    )
    assert first.ok and second.ok and first.code == 0
    assert first.provider_id == "1" and second.provider_id == "2"
    assert wechat.token_requests == 1
    key = Keys(channel_settings.prefix).wechat_token(wechat.appid)
    assert await redis.get(key) == b"token-1"
    ttl_ms = await redis.pttl(key)
    assert 0 < ttl_ms <= (7200 - REFRESH_MARGIN_S) * 1000
    assert {got.query["access_token"] for got in wechat.received} == {"token-1"}


async def test_template_body_and_chinese_round_trip(
    channel: WeChatChannel, wechat: FakeWeChat
) -> None:
    assert (await channel.send(message("wechat", OPENID, title="订单已发货", body="明天送达"))).ok
    (body,) = sent_bodies(wechat)
    assert body == {
        "touser": OPENID,
        "template_id": "TPL-order-shipped",
        "data": {"thing1": {"value": "订单已发货"}, "thing2": {"value": "明天送达"}},
        "lang": "zh_CN",
    }
    assert "订单已发货".encode() in wechat.received[0].body  # raw UTF-8 JSON


async def test_long_chinese_values_are_clipped_to_field_limits(
    channel: WeChatChannel, wechat: FakeWeChat
) -> None:
    assert (await channel.send(message("wechat", OPENID))).ok
    data = sent_bodies(wechat)[0]["data"]
    assert data["thing1"]["value"] == CHINESE_TITLE  # short enough: untouched
    assert len(data["thing2"]["value"]) == 20 and data["thing2"]["value"].endswith("…")
    assert CHINESE_BODY.startswith(data["thing2"]["value"][:-1])
    assert clip_field("phrase3", "已经发货了哦") == "已经发货…"
    assert clip_field("time4", "2024年1月1日 12:00" * 3) == "2024年1月1日 12:00" * 3


async def test_per_notification_template_and_page(
    channel: WeChatChannel, wechat: FakeWeChat
) -> None:
    custom = {
        "template_id": "TPL-refund",
        "page": "pages/refund?id=9",
        "data": {"amount5": "¥99.00", "thing6": "退款成功"},
    }
    assert (await channel.send(message("wechat", OPENID, data={"wechat": custom}))).ok
    body = sent_bodies(wechat)[0]
    assert body["template_id"] == "TPL-refund" and body["page"] == "pages/refund?id=9"
    assert body["data"] == {"amount5": {"value": "¥99.00"}, "thing6": {"value": "退款成功"}}


async def test_expired_token_is_refreshed_and_the_send_retried_once(
    channel: WeChatChannel, wechat: FakeWeChat, redis: Any, channel_settings: Settings
) -> None:
    assert (await channel.send(message("wechat", OPENID))).ok
    wechat.expire_all()  # WeChat now answers 42001 for token-1
    result = await channel.send(message("wechat", OPENID))
    assert result.ok
    assert wechat.token_requests == 2
    assert [got.query["access_token"] for got in wechat.received] == [
        "token-1",
        "token-1",
        "token-2",
    ]
    key = Keys(channel_settings.prefix).wechat_token(wechat.appid)
    assert await redis.get(key) == b"token-2"


async def test_a_token_rejected_twice_is_retryable_not_a_loop(
    channel: WeChatChannel, wechat: FakeWeChat
) -> None:
    assert (await channel.send(message("wechat", OPENID))).ok
    wechat.script(Reply(200, {"errcode": 40001, "errmsg": "invalid credential"}))
    wechat.expire_all()  # first try: 42001; refreshed token: scripted 40001
    result = await channel.send(message("wechat", OPENID))
    assert result.outcome is Outcome.RETRY and result.code == 40001
    assert "rejected twice" in result.detail
    assert len(wechat.received) == 3 and wechat.token_requests == 2


async def test_stale_invalidation_keeps_a_fresh_token(
    channel: WeChatChannel, wechat: FakeWeChat
) -> None:
    assert await channel.tokens.get() == "token-1"
    assert await channel.tokens.invalidate("token-1") is True
    assert await channel.tokens.get() == "token-2"
    assert await channel.tokens.invalidate("token-1") is False  # another worker's old view
    assert await channel.tokens.get() == "token-2"


async def test_workers_share_the_token_and_fetch_it_once(
    channel_settings: Settings, wechat: FakeWeChat, redis: Any
) -> None:
    settings = configured(channel_settings, wechat)
    workers = [WeChatChannel(settings, redis) for _ in range(3)]
    try:
        sends = [w.send(message("wechat", OPENID)) for w in workers for _ in range(5)]
        results = await asyncio.gather(*sends)
    finally:
        for w in workers:
            await w.aclose()
    assert all(r.ok for r in results)
    assert wechat.token_requests == 1
    assert sum(w.tokens.fetches for w in workers) == 1


@pytest.mark.parametrize(
    ("errcode", "outcome"),
    [
        (-1, Outcome.RETRY),
        (45009, Outcome.RETRY),
        (43101, Outcome.FAILED),
        (40003, Outcome.FAILED),
        (47003, Outcome.FAILED),
        (99999, Outcome.FAILED),
    ],
)
async def test_errcodes_map_to_outcomes(
    channel: WeChatChannel, wechat: FakeWeChat, errcode: int, outcome: Outcome
) -> None:
    wechat.script(Reply(200, {"errcode": errcode, "errmsg": "scripted"}))
    result = await channel.send(message("wechat", OPENID))
    assert result.outcome is outcome and result.code == errcode


async def test_http_500_and_timeout_are_retryable(
    channel_settings: Settings, wechat: FakeWeChat, redis: Any
) -> None:
    wechat.script(Reply(500), Reply(200, {"errcode": 0}, delay_s=5.0))
    settings = configured(channel_settings, wechat, wechat_timeout_s=SHORT_TIMEOUT_S)
    chan = WeChatChannel(settings, redis)
    try:
        assert (await chan.send(message("wechat", OPENID))).outcome is Outcome.RETRY
        timed_out = await chan.send(message("wechat", OPENID))
    finally:
        await chan.aclose()
    assert timed_out.outcome is Outcome.RETRY and "timed out" in timed_out.detail


async def test_token_fetch_failure_is_retryable_and_names_no_secret(
    channel_settings: Settings, wechat: FakeWeChat, redis: Any
) -> None:
    chan = WeChatChannel(configured(channel_settings, wechat, wechat_secret="wrong"), redis)
    try:
        result = await chan.send(message("wechat", OPENID))
    finally:
        await chan.aclose()
    assert result.outcome is Outcome.RETRY and result.code == 40125
    assert "wrong" not in result.detail
    assert wechat.received == []  # nothing sent without a token


async def test_missing_template_or_credentials_fail_clearly(
    channel_settings: Settings, wechat: FakeWeChat, redis: Any
) -> None:
    for changes, needle in [
        ({"wechat_template_id": ""}, "HERALD_WECHAT_TEMPLATE_ID"),
        ({"wechat_appid": ""}, "HERALD_WECHAT_APPID"),
    ]:
        chan = WeChatChannel(configured(channel_settings, wechat, **changes), redis)
        try:
            result = await chan.send(message("wechat", OPENID))
        finally:
            await chan.aclose()
        assert result.outcome is Outcome.FAILED and needle in result.detail
    assert wechat.token_requests == 0


def test_token_ttl_leaves_a_margin() -> None:
    assert token_ttl_ms(7200) == (7200 - REFRESH_MARGIN_S) * 1000
    assert token_ttl_ms(100) == 50_000
    assert token_ttl_ms(0) == 1000


async def test_a_failed_refresh_hands_the_lock_on_without_waiting_it_out(
    channel: WeChatChannel, wechat: FakeWeChat
) -> None:
    wechat.token_errcode = -1  # WeChat busy: every fetch fails
    started = time.monotonic()
    results = await asyncio.gather(*(channel.send(message("wechat", OPENID)) for _ in range(3)))
    assert [r.outcome for r in results] == [Outcome.RETRY] * 3
    assert all(r.code == -1 and "access token fetch" in r.detail for r in results)
    assert wechat.token_requests == 3  # one try per send, taken in turn
    assert time.monotonic() - started < 2.0  # far below the 4 s lock time
    wechat.token_errcode = None
    assert (await channel.send(message("wechat", OPENID))).ok
