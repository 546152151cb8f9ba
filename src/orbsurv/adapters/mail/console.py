"""The development mailer: writes each message to the log instead of sending it."""

from __future__ import annotations

import logging

from orbsurv.application.ports import OutgoingEmail

logger = logging.getLogger("orbsurv.mail")


class ConsoleMailer:
    async def send(self, message: OutgoingEmail) -> None:
        logger.info("mail to %s: %s\n%s", message.to, message.subject, message.text)
