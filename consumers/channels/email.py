"""Email channel: SMTP through aiosmtplib, plain text plus HTML.

Each send opens one SMTP session (TLS per HERALD_SMTP_TLS, optional login) and
delivers one ``multipart/alternative`` message: the text part carries title and
body as written; the HTML part escapes them (user text never becomes markup).
``Message-ID`` is ``<idempotency-key@from-domain>``, the same on every attempt,
so receiving systems and humans can spot a duplicate after a lost answer.

Outcomes: accepted by the server is sent; 4xx replies, timeouts, lost
connections, and configuration trouble (login refused, sender refused, TLS not
offered) retry; 5xx replies to the recipient or the content fail permanently; an
address that is not ``local@domain`` fails without a connection.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from herald.consumers.channels.base import OutboundMessage, SendResult, error_detail
from herald.streams.settings import Settings

# One plain addr-spec: no display name, no list separators, no whitespace.
ADDRESS = re.compile(r"^[^@\s<>\"(),;:\[\]\\]+@[^@\s<>\"(),;:\[\]\\]+$")
FALLBACK_DOMAIN = "herald.invalid"
# SMTP errors that say the configuration (not this message) is wrong: retry.
CONFIG_ERRORS = (
    aiosmtplib.SMTPAuthenticationError,
    aiosmtplib.SMTPSenderRefused,
    aiosmtplib.SMTPNotSupported,
    aiosmtplib.SMTPHeloError,
)


def message_id(key: str, sender: str) -> str:
    """``<key@domain>`` with the domain of the From address."""
    _, address = parseaddr(sender)
    domain = address.rpartition("@")[2] if "@" in address else ""
    domain = domain or FALLBACK_DOMAIN
    return f"<{key}@{domain}>"


def html_body(title: str, body: str) -> str:
    """A minimal HTML document; every piece of user text is escaped."""
    paragraphs = "".join(
        f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>"
        for part in body.split("\n\n")
        if part.strip()
    )
    safe_title = html.escape(title)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{safe_title}</title></head>\n<body>\n<h1>{safe_title}</h1>\n"
        f"{paragraphs}\n</body></html>\n"
    )


def build_email(message: OutboundMessage, sender: str) -> EmailMessage:
    """The MIME message for one recipient (UTF-8; headers encoded as needed). A
    template's ``email`` variant may give the ``subject`` and ``body``."""
    variant = message.variant or {}
    title = str(variant.get("subject") or message.title)
    body = str(variant.get("body") or message.body)
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.recipient.address
    mail["Subject"] = " ".join(title.split())  # a header is one line
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(message.idempotency_key, sender)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    mail["X-Herald-Notification-Id"] = message.notification_id
    text = f"{title}\n\n{body}\n" if body else f"{title}\n"
    mail.set_content(text, charset="utf-8")
    mail.add_alternative(html_body(title, body), subtype="html", charset="utf-8")
    return mail


def classify_smtp(exc: Exception) -> SendResult:
    """The result for an exception aiosmtplib raised."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, CONFIG_ERRORS):
        code = getattr(exc, "code", None)
        return SendResult.retry(f"SMTP configuration: {error_detail(exc)}", code=code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        detail = f"SMTP {exc.code}: {exc.message}"
        if 400 <= exc.code < 500:
            return SendResult.retry(detail, code=exc.code)
        return SendResult.failed(detail, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPException) and not isinstance(
        exc, ConnectionError | TimeoutError
    ):
        # no reply code: an extension we asked for (STARTTLS, AUTH) is missing
        return SendResult.retry(f"SMTP configuration: {error_detail(exc)}")
    return SendResult.retry(error_detail(exc))


class EmailChannel:
    """One SMTP session per send (no pool); bounded by HERALD_SMTP_TIMEOUT."""

    name = "email"
    provider = "smtp"
    contact = "email"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        tls = settings.smtp_tls
        self._use_tls = tls == "tls"
        self._start_tls: bool | None = {"auto": None, "starttls": True}.get(tls, False)

    async def send(self, message: OutboundMessage) -> SendResult:
        address = message.recipient.address
        if not ADDRESS.match(address):
            return SendResult.failed(f"not an email address: {address!r}")
        settings = self._settings
        try:
            mail = build_email(message, settings.smtp_from)
            sender = mail["From"].addresses[0].addr_spec
        except (ValueError, IndexError) as exc:
            return SendResult.failed(f"cannot build the message: {exc}")
        try:
            await aiosmtplib.send(
                mail,
                sender=sender,
                recipients=[address],
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                use_tls=self._use_tls,
                start_tls=self._start_tls,
                timeout=settings.smtp_timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return classify_smtp(exc)
        return SendResult.sent(mail["Message-ID"])

    async def aclose(self) -> None:
        """Nothing is held between sends."""
