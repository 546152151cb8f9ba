"""The development mailer: notes each message in the log instead of sending it.

The body stays out of the log (it carries single-use links); ``orbsurv mail list`` prints it from
the outbox."""

from __future__ import annotations

import logging

from orbsurv.application.ports import OutgoingEmail

logger = logging.getLogger("orbsurv.mail")


class ConsoleMailer:
    async def send(self, message: OutgoingEmail) -> None:
        logger.info(
            "mail to %s: %s (not sent; `orbsurv mail list` shows it)", message.to, message.subject
        )
