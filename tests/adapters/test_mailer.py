"""One contract, every Mailer adapter: SMTP (a real aiosmtpd server on loopback) and console."""

from __future__ import annotations

import logging

import pytest

from orbsurv.adapters.mail.console import ConsoleMailer
from orbsurv.adapters.mail.smtp import SmtpMailer, SmtpProbe
from orbsurv.application.errors import MailDeliveryFailed
from orbsurv.application.ports import Mailer, OutgoingEmail
from tests.conftest import SmtpServer
from tests.services import free_port

MESSAGE = OutgoingEmail(
    to="ada@example.com",
    subject="Welcome to Orbsurv",
    text="Hello Ada",
    html="<p>Hello <b>Ada</b></p>",
)


@pytest.fixture(params=["smtp", "console"])
def mailer(request: pytest.FixtureRequest) -> Mailer:
    if request.param == "console":
        return ConsoleMailer()
    server: SmtpServer = request.getfixturevalue("smtp_server")
    return SmtpMailer(
        host=server.host,
        port=server.port,
        sender="Orbsurv <no-reply@orbsurv.test>",
        security="plain",
    )


async def test_send_accepts_a_message(mailer: Mailer) -> None:
    await mailer.send(MESSAGE)


async def test_smtp_delivers_text_and_html(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(
        host=smtp_server.host,
        port=smtp_server.port,
        sender="no-reply@orbsurv.test",
        security="plain",
    )
    await mailer.send(MESSAGE)
    [received] = smtp_server.messages
    assert received["To"] == "ada@example.com"
    assert received["Subject"] == "Welcome to Orbsurv"
    assert received["Message-ID"]
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in received.walk()}
    assert b"Hello Ada" in parts["text/plain"]
    assert b"<b>Ada</b>" in parts["text/html"]


async def test_smtp_refusal_is_a_delivery_failure(smtp_server: SmtpServer) -> None:
    smtp_server.refuse = True
    mailer = SmtpMailer(
        host=smtp_server.host,
        port=smtp_server.port,
        sender="no-reply@orbsurv.test",
        security="plain",
    )
    with pytest.raises(MailDeliveryFailed):
        await mailer.send(MESSAGE)
    assert smtp_server.messages == []


async def test_unreachable_server_is_a_delivery_failure() -> None:
    mailer = SmtpMailer(
        host="127.0.0.1", port=free_port(), sender="a@b.test", security="plain", timeout=2
    )
    with pytest.raises(MailDeliveryFailed):
        await mailer.send(MESSAGE)
    with pytest.raises(OSError, match=r"(?i)connect"):
        await SmtpProbe(mailer).check()


async def test_smtp_probe_reaches_the_server(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(
        host=smtp_server.host, port=smtp_server.port, sender="a@b.test", security="plain"
    )
    await SmtpProbe(mailer).check()


async def test_console_mailer_logs_the_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="orbsurv.mail"):
        await ConsoleMailer().send(MESSAGE)
    assert "ada@example.com" in caplog.text
    assert "Welcome to Orbsurv" in caplog.text
    assert "Hello Ada" not in caplog.text  # bodies carry single-use links
