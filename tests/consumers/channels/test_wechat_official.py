"""WeChat Official Account template messages and WeCom application messages against
fakes of their APIs: shared access tokens (one fetch for N workers, refreshed once on
40001/42001), throttling, permanent errors."""

from __future__ import annotations

import asyncio
from typing import Any

from herald.consumers.channels.base import Outcome, SendResult
from herald.consumers.channels.wechat_official import WeChatOfficialChannel
from herald.consumers.channels.wecom import WeComChannel
from herald.provider_fakes import Fakes, Reply
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import provider_config
from tests.consumers.helpers.messages import message

OPENID = "oABCD1234567890openid"


async def _many(channels: list[Any], count: int, channel: str, address: str
                ) -> list[SendResult]:
    return list(await asyncio.gather(*(
        channels[i % len(channels)].send(message(channel, address,
                                                 notification_id=f"01HZX3J4K5M6N7P8Q9R0S1T2{i:02d}"))
        for i in range(count))))


async def test_official_account_template_message(channel_settings: Settings,
                                                 fakes: Fakes, redis: Any) -> None:
    settings = provider_config(channel_settings, fakes, wechat_provider="official",
                               wechat_title_field="first", wechat_body_field="remark",
                               wechat_page="https://shop.example/orders/1024")
    channel = WeChatOfficialChannel(settings, redis)
    try:
        variant = {"template_id": "tmpl-shipped", "fields": {"keyword1": "1024",
                                                             "keyword2": "已发货"},
                   "url": "https://shop.example/o/1024"}
        result = await channel.send(message("wechat", OPENID, variant=variant))
        assert result.outcome is Outcome.SENT and result.provider_id == "1"
        doc = fakes.wechat.received[-1].json()
        assert fakes.wechat.received[-1].path.endswith("/message/template/send")
        assert doc["template_id"] == "tmpl-shipped" and doc["touser"] == OPENID
        assert doc["data"] == {"keyword1": {"value": "1024"}, "keyword2": {"value": "已发货"}}
        assert doc["url"] == "https://shop.example/o/1024"
        assert doc["client_msg_id"] == message("wechat", OPENID).idempotency_key
        plain = await channel.send(message("wechat", OPENID, title="T", body="B"))
        assert plain.ok
        assert fakes.wechat.received[-1].json()["data"] == {"first": {"value": "T"},
                                                            "remark": {"value": "B"}}
    finally:
        await channel.aclose()


async def test_official_account_tokens_one_fetch_for_n_workers_and_one_refresh(
        channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    settings = provider_config(channel_settings, fakes, wechat_provider="official")
    workers = [WeChatOfficialChannel(settings, redis) for _ in range(5)]
    try:
        assert all(r.ok for r in await _many(workers, 20, "wechat", OPENID))
        assert fakes.wechat.token_requests == 1
        assert sum(w.tokens.fetches for w in workers) == 1
        fakes.wechat.expire_all()  # WeChat answers 42001 to the old token from now on
        assert all(r.ok for r in await _many(workers, 20, "wechat", OPENID))
        assert fakes.wechat.token_requests == 2  # one refresh, shared by all
    finally:
        for w in workers:
            await w.aclose()


async def test_official_account_errors(channel_settings: Settings, fakes: Fakes,
                                       redis: Any) -> None:
    channel = WeChatOfficialChannel(provider_config(channel_settings, fakes,
                                                    wechat_provider="official"), redis)
    fakes.wechat.script(Reply(200, {"errcode": 45009, "errmsg": "reach max api daily quota"}),
                        Reply(200, {"errcode": 43004, "errmsg": "require subscribe"}))
    try:
        busy = await channel.send(message("wechat", OPENID))
        assert busy.outcome is Outcome.RETRY and busy.code == 45009
        gone = await channel.send(message("wechat", OPENID))
        assert gone.outcome is Outcome.FAILED and gone.code == 43004
        assert "does not follow" in gone.detail
    finally:
        await channel.aclose()


async def test_wecom_text_and_textcard(channel_settings: Settings, fakes: Fakes,
                                       redis: Any) -> None:
    channel = WeComChannel(provider_config(channel_settings, fakes, wechat_provider="wecom"),
                           redis)
    try:
        assert channel.contact == "wecom_userid"
        result = await channel.send(message("wechat", "ZhangSan", title="审批", body="请处理"))
        assert result.outcome is Outcome.SENT and result.provider_id == "msg1"
        got = fakes.wecom.received[-1]
        assert got.verified and got.json()["text"] == {"content": "审批\n请处理"}
        assert got.json()["agentid"] == 1000002 and got.json()["enable_duplicate_check"] == 1
        card = {"msgtype": "textcard", "title": "订单 1024", "description": "已发货",
                "url": "https://shop.example/o/1024"}
        assert (await channel.send(message("wechat", "ZhangSan", variant=card))).ok
        assert fakes.wecom.received[-1].json()["textcard"]["title"] == "订单 1024"
    finally:
        await channel.aclose()


async def test_wecom_tokens_one_fetch_for_n_workers_and_one_refresh(
        channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    settings = provider_config(channel_settings, fakes, wechat_provider="wecom")
    workers = [WeComChannel(settings, redis) for _ in range(5)]
    try:
        assert all(r.ok for r in await _many(workers, 20, "wechat", "ZhangSan"))
        assert fakes.wecom.token_requests == 1
        fakes.wecom.expire_all()
        assert all(r.ok for r in await _many(workers, 20, "wechat", "ZhangSan"))
        assert fakes.wecom.token_requests == 2
    finally:
        for w in workers:
            await w.aclose()


async def test_wecom_errors(channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    channel = WeComChannel(provider_config(channel_settings, fakes, wechat_provider="wecom"),
                           redis)
    fakes.wecom.script(Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
                       Reply(200, {"errcode": 81013, "errmsg": "user & party & tag all "
                                                              "invalid"}),
                       Reply(200, {"errcode": 0, "errmsg": "ok", "invaliduser": "ZhangSan"}))
    try:
        assert (await channel.send(message("wechat", "ZhangSan"))).outcome is Outcome.RETRY
        invalid = await channel.send(message("wechat", "ZhangSan"))
        assert invalid.outcome is Outcome.FAILED and invalid.code == 81013
        listed = await channel.send(message("wechat", "ZhangSan"))
        assert listed.outcome is Outcome.FAILED and "ZhangSan" in listed.detail
    finally:
        await channel.aclose()
