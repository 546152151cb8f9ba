"""The small HTML pages mail links open (verification, email change, password reset).

Opening a link changes nothing: mail scanners and link previews fetch every link they see, and a
single-use token spent on ``GET`` would be gone before the person clicks. The page shows a plain
form (no JavaScript) that posts back to its own address, so the token stays in the address and
never enters the markup; only that ``POST`` spends it. Strict CSP (style by hash, no script, forms
to this origin only, no framing), ``Referrer-Policy: no-referrer``, no caching.
"""

from __future__ import annotations

import base64
import hashlib
import html as markup
from typing import Any

from litestar import MediaType, Response

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;color:#1f2933}"
    "input,button{display:block;width:100%;margin:.5rem 0;padding:.5rem;font-size:1rem}"
    ".err{color:#b42318}.ok{color:#027a48}"
)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = "; ".join(
    [
        "default-src 'none'",
        f"style-src 'sha256-{_sha256(STYLE)}'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SAFETY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


def html(status: int, title: str, body: str) -> Response[Any]:
    return Response(
        _page(title, body),
        status_code=status,
        media_type=MediaType.HTML,
        headers=SAFETY_HEADERS,
    )


VERIFIED = (
    "Email confirmed",
    '<p class="ok">Your email address is confirmed. You can close this page.</p>',
)
NOT_VERIFIED = (
    "Link not valid",
    '<p class="err">This link is invalid, expired or already used. '
    "Ask for a new one from your account.</p>",
)
CONFIRM_EMAIL = (
    "Confirm your email address",
    "<p>Press the button to confirm this email address.</p>"
    '<form method="post"><button type="submit">Confirm my email address</button></form>',
)
RESET_DONE = (
    "Password changed",
    '<p class="ok">Your password was changed. You can sign in now.</p>',
)
NOT_RESET = (
    "Link not valid",
    '<p class="err">This link is invalid, expired or already used. '
    "Ask for a new one from the sign-in page.</p>",
)


def reset_form(problem: str | None = None) -> tuple[str, str]:
    """The reset form; ``problem`` (plain text, escaped here) is shown above it."""
    notice = f'<p class="err">{markup.escape(problem)}</p>' if problem else ""
    return (
        "Choose a new password",
        f"{notice}"
        '<form method="post"><label>New password <input name="password" type="password" '
        'autocomplete="new-password" minlength="8" maxlength="128" required></label>'
        '<label>Repeat it <input name="again" type="password" autocomplete="new-password" '
        'required></label><button type="submit">Change my password</button></form>',
    )
