"""TOTP (RFC 6238) through pyotp: 6 digits, 30-second steps, one step of clock drift either way."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

ISSUER_NAME = "Orbsurv"


class TotpVerifier:
    def new_secret(self) -> str:
        return pyotp.random_base32()

    def provisioning_uri(self, secret: str, account: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER_NAME)

    def matching_step(self, secret: str, code: str, now: datetime) -> int | None:
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret)
        step = totp.timecode(now)
        found = None
        for candidate in (step - 1, step, step + 1):  # no early exit: constant work
            if hmac.compare_digest(totp.generate_otp(candidate), code):
                found = candidate
        return found
