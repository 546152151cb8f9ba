"""Mail content from fixed jinja2 templates (autoescaped HTML plus a text part)."""

from __future__ import annotations

import dataclasses
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from orbsurv.application.ports import OutgoingEmail

_FORM_NAMES = {
    "waitlist": "waitlist sign-up",
    "contact": "message",
    "investor_interest": "investor enquiry",
    "pilot_request": "pilot request",
}


class JinjaEmailComposer:
    def __init__(
        self, *, verify_hours: int = 24, reset_minutes: int = 30, order_link_days: int = 7
    ) -> None:
        self._env = Environment(
            loader=PackageLoader("orbsurv.adapters.mail", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,  # the templates are package data: no stat() per render
        )
        self._acknowledgements: dict[str, OutgoingEmail] = {}
        self._verify_hours = verify_hours
        self._reset_minutes = reset_minutes
        self._order_link_days = order_link_days

    def _render(self, template: str, to: str, subject: str, **context: Any) -> OutgoingEmail:
        values = {"subject": subject, **context}
        return OutgoingEmail(
            to=to,
            subject=subject,
            text=self._env.get_template(f"{template}.txt").render(values),
            html=self._env.get_template(f"{template}.html").render(values),
        )

    def verify_email(self, to: str, link: str) -> OutgoingEmail:
        return self._render(
            "verify_email", to, "Confirm your email address", link=link, hours=self._verify_hours
        )

    def reset_password(self, to: str, link: str) -> OutgoingEmail:
        return self._render(
            "reset_password", to, "Reset your password", link=link, minutes=self._reset_minutes
        )

    def confirm_new_email(self, to: str, link: str) -> OutgoingEmail:
        return self._render(
            "confirm_new_email",
            to,
            "Confirm your new email address",
            link=link,
            hours=self._verify_hours,
        )

    def email_change_notice(self, to: str) -> OutgoingEmail:
        return self._render("email_change_notice", to, "Your email address is being changed")

    def form_acknowledgement(self, to: str, form: str) -> OutgoingEmail:
        """The same words for every address (none of the submitted text), so each form's is
        rendered once; the public forms ask for it on every submission."""
        what = _FORM_NAMES.get(form, "message")
        rendered = self._acknowledgements.get(what)
        if rendered is None:
            rendered = self._render(
                "form_acknowledgement", "", f"We received your {what}", what=what
            )
            self._acknowledgements[what] = rendered
        return dataclasses.replace(rendered, to=to)

    def password_changed(self, to: str) -> OutgoingEmail:
        return self._render("password_changed", to, "Your password was changed")

    def sign_in_locked(self, to: str, minutes: int) -> OutgoingEmail:
        return self._render(
            "sign_in_locked", to, "Sign-ins to your account were paused", minutes=minutes
        )

    def order_registration(self, to: str, link: str, plan: str) -> OutgoingEmail:
        return self._render(
            "order_registration",
            to,
            "Your Orbsurv pre-order: create your account",
            link=link,
            plan=plan,
            days=self._order_link_days,
        )

    def order_received(self, to: str, plan: str) -> OutgoingEmail:
        return self._render("order_received", to, "We received your Orbsurv pre-order", plan=plan)
