"""Mail delivery over SMTP (aiosmtplib): plain, STARTTLS or implicit TLS."""

from __future__ import annotations

import email.utils
import ssl
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from orbsurv.application.errors import MailDeliveryFailed
from orbsurv.application.ports import OutgoingEmail

SmtpSecurity = Literal["plain", "starttls", "ssl"]


def to_mime(message: OutgoingEmail, sender: str) -> EmailMessage:
    mime = EmailMessage()
    mime["From"] = sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(usegmt=True)
    mime["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        security: SmtpSecurity = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._security = security
        self._username = username
        self._password = password
        self._timeout = timeout

    async def send(self, message: OutgoingEmail) -> None:
        try:
            await aiosmtplib.send(
                to_mime(message, self._sender),
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._security == "ssl",
                start_tls=self._security == "starttls",
                tls_context=ssl.create_default_context(),
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryFailed(f"SMTP delivery to {self._host}:{self._port} failed") from exc

    async def check(self) -> None:
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            use_tls=self._security == "ssl",
            start_tls=self._security == "starttls",
            timeout=self._timeout,
        )
        async with client:
            await client.noop()


class MailProbe:
    """Reachability of the mail server (not part of readiness: mail leaves through the outbox)."""

    name = "mail"

    async def check(self) -> None:
        return None


class SmtpProbe(MailProbe):
    def __init__(self, mailer: SmtpMailer) -> None:
        self._mailer = mailer

    async def check(self) -> None:
        await self._mailer.check()
