"""Opaque refresh tokens: 256 random bits, stored only as a hash.

When a token is rotated its child is kept *sealed under the parent*: XOR with a pad derived from
the parent token. Whoever presents the parent again within the grace window can get the child
back; the database alone never holds a usable refresh token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_refresh_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _pad(parent: str, length: int) -> bytes:
    blocks = b""
    counter = 0
    while len(blocks) < length:
        blocks += hmac.new(parent.encode(), b"seal:%d" % counter, hashlib.sha256).digest()
        counter += 1
    return blocks[:length]


def seal(child: str, parent: str) -> str:
    data = child.encode("ascii")
    return base64.urlsafe_b64encode(
        bytes(a ^ b for a, b in zip(data, _pad(parent, len(data)), strict=True))
    ).decode()


def unseal(sealed: str, parent: str) -> str:
    """The child sealed under ``parent``; ``ValueError`` when ``parent`` is not the sealing one
    and the result is not even a token."""
    data = base64.urlsafe_b64decode(sealed.encode("ascii"))
    clear = bytes(a ^ b for a, b in zip(data, _pad(parent, len(data)), strict=True))
    return clear.decode("ascii")  # UnicodeDecodeError is a ValueError
