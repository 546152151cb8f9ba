"""The two small HTML pages mail links open. They never put the token into markup or script:
the verify page works server-side and shows a fixed message; the reset page's script reads the
token from the address bar, posts it, and strips it from the history. Strict CSP (hashes only),
``Referrer-Policy: no-referrer``, no caching."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from litestar import MediaType, Response

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;color:#1f2933}"
    "input,button{display:block;width:100%;margin:.5rem 0;padding:.5rem;font-size:1rem}"
    ".err{color:#b42318}.ok{color:#027a48}"
)
RESET_SCRIPT = """
const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", location.pathname);
const form = document.getElementById("reset");
const out = document.getElementById("out");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = form.elements.password.value;
  if (password !== form.elements.again.value) {
    out.className = "err"; out.textContent = "The two passwords differ."; return;
  }
  const answer = await fetch("/api/v1/auth/password-reset/confirm", {
    method: "POST", headers: {"Content-Type": "application/json"}, credentials: "omit",
    body: JSON.stringify({token: token, new_password: password}),
  });
  const body = await answer.json().catch(() => ({}));
  out.className = answer.ok ? "ok" : "err";
  out.textContent = answer.ok ? "Your password was changed. You can sign in now."
                              : (body.detail || "The password could not be changed.");
  if (answer.ok) form.remove();
});
"""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = "; ".join(
    [
        "default-src 'none'",
        f"style-src 'sha256-{_sha256(STYLE)}'",
        f"script-src 'sha256-{_sha256(RESET_SCRIPT)}'",
        "connect-src 'self'",
        "form-action 'none'",
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


def _page(title: str, body: str, *, script: bool = False) -> str:
    tail = f"<script>{RESET_SCRIPT}</script>" if script else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>{body}{tail}</body></html>"
    )


def html(status: int, title: str, body: str, *, script: bool = False) -> Response[Any]:
    return Response(
        _page(title, body, script=script),
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
RESET_FORM = (
    "Choose a new password",
    '<form id="reset"><label>New password <input name="password" type="password" '
    'autocomplete="new-password" minlength="8" maxlength="128" required></label>'
    '<label>Repeat it <input name="again" type="password" autocomplete="new-password" required>'
    '</label><button type="submit">Change my password</button></form><p id="out"></p>',
)
