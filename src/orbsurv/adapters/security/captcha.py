"""Captcha checks against an hCaptcha/Turnstile-compatible ``siteverify`` endpoint (httpx)."""

from __future__ import annotations

import logging

import httpx

logger = logging.getLogger(__name__)

TURNSTILE_VERIFY_URL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"


class HttpCaptchaVerifier:
    def __init__(
        self, secret: str, verify_url: str = TURNSTILE_VERIFY_URL, timeout: float = 5.0
    ) -> None:
        self._secret = secret
        self._url = verify_url
        self._client = httpx.AsyncClient(timeout=timeout)

    async def verify(self, token: str | None, ip: str | None) -> bool:
        if not token or len(token) > 4096:
            return False
        form = {"secret": self._secret, "response": token}
        if ip:
            form["remoteip"] = ip
        try:
            answer = await self._client.post(self._url, data=form)
            answer.raise_for_status()
            return bool(answer.json().get("success") is True)
        except (httpx.HTTPError, ValueError):
            logger.warning("captcha verification failed; refusing the submission", exc_info=True)
            return False  # fail closed

    async def aclose(self) -> None:
        await self._client.aclose()


class NoCaptcha:
    """No captcha configured: every submission passes this check."""

    async def verify(self, token: str | None, ip: str | None) -> bool:
        return True
