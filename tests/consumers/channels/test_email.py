"""Email channel against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import pytest

from herald.consumers.channels.base import Outcome
from herald.consumers.channels.email import EmailChannel, html_body, message_id
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import SmtpServer, free_port
from tests.consumers.helpers.messages import CHINESE_BODY, CHINESE_TITLE, message

ADDRESS = "zhang.wei@example.cn"


@pytest.fixture
def mail_settings(channel_settings: Settings, smtp_server: SmtpServer) -> Settings:
    return channel_settings.replace(
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_from="Herald 通知 <notify@herald.example>",
    )


async def test_multipart_with_escaped_html_and_chinese_round_trip(
    mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    msg = message("email", ADDRESS)
    result = await EmailChannel(mail_settings).send(msg)
    assert result.outcome is Outcome.SENT
    assert result.provider_id == f"<{msg.idempotency_key}@herald.example>"
    ((mail_from, rcpt_tos, mail),) = smtp_server.mailbox.messages
    assert mail_from == "notify@herald.example" and rcpt_tos == [ADDRESS]
    assert mail["Subject"] == CHINESE_TITLE
    assert mail["From"].addresses[0].display_name == "Herald 通知"
    assert mail["Message-ID"] == result.provider_id
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    # SMTP carries CRLF line ends; compare the text itself
    plain_part, html_part = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain_part is not None and html_part is not None
    plain = plain_part.get_content().replace("\r\n", "\n")
    html = html_part.get_content().replace("\r\n", "\n")
    assert plain == f"{CHINESE_TITLE}\n\n{CHINESE_BODY}\n"
    assert "<b>不是标签</b>" not in html
    assert "&lt;b&gt;不是标签&lt;/b&gt; &amp; 引号&quot;&#x27;" in html
    assert "您的订单 #1024 已发货，预计明天送达。<br>感谢您的耐心等待！" in html


async def test_message_id_is_the_same_on_every_attempt(
    mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    channel = EmailChannel(mail_settings)
    for attempt in (1, 2):
        assert (await channel.send(message("email", ADDRESS, attempt=attempt))).ok
    ids = {mail["Message-ID"] for _, _, mail in smtp_server.mailbox.messages}
    assert len(ids) == 1 and len(smtp_server.mailbox.messages) == 2


@pytest.mark.parametrize(
    ("reply", "outcome", "code"),
    [
        ("550 5.1.1 No such user", Outcome.FAILED, 550),
        ("451 4.3.0 Mailbox busy, try later", Outcome.RETRY, 451),
    ],
)
async def test_recipient_refusals_map_by_reply_class(
    mail_settings: Settings, smtp_server: SmtpServer, reply: str, outcome: Outcome, code: int
) -> None:
    smtp_server.mailbox.refuse[ADDRESS] = reply
    result = await EmailChannel(mail_settings).send(message("email", ADDRESS))
    assert result.outcome is outcome and result.code == code
    assert smtp_server.mailbox.messages == []


async def test_unreachable_server_is_retryable(channel_settings: Settings) -> None:
    settings = channel_settings.replace(smtp_host="127.0.0.1", smtp_port=free_port())
    result = await EmailChannel(settings).send(message("email", ADDRESS))
    assert result.outcome is Outcome.RETRY and result.detail


async def test_starttls_required_but_not_offered_is_a_configuration_retry(
    mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    result = await EmailChannel(mail_settings.replace(smtp_tls="starttls")).send(
        message("email", ADDRESS)
    )
    assert result.outcome is Outcome.RETRY and "configuration" in result.detail
    assert smtp_server.mailbox.messages == []


@pytest.mark.parametrize("address", ["no-at-sign", "a@b@c", "two words@example.cn", ""])
async def test_invalid_addresses_fail_without_a_connection(
    mail_settings: Settings, smtp_server: SmtpServer, address: str
) -> None:
    result = await EmailChannel(mail_settings).send(message("email", address))
    assert result.outcome is Outcome.FAILED
    assert smtp_server.mailbox.messages == []


def test_helpers() -> None:
    assert message_id("k1", "Herald <a@b.example>") == "<k1@b.example>"
    assert message_id("k1", "nobody") == "<k1@herald.invalid>"
    assert "<script>" not in html_body("<script>x</script>", "")


async def test_list_separators_and_multiline_titles_are_contained(
    mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    channel = EmailChannel(mail_settings)
    for address in ("a@b.cn,c@d.cn", "a@b.cn;c@d.cn", "Zhang <a@b.cn>"):
        assert (await channel.send(message("email", address))).outcome is Outcome.FAILED
    result = await channel.send(message("email", ADDRESS, title="第一行\r\nBcc: evil@x.cn"))
    assert result.ok
    ((_, rcpt_tos, mail),) = smtp_server.mailbox.messages
    assert rcpt_tos == [ADDRESS] and mail["Bcc"] is None
    assert mail["Subject"] == "第一行 Bcc: evil@x.cn"
