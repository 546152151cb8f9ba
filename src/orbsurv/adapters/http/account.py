"""Account routes: verification, password reset (with their pages) and the portal."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal

import msgspec
from dishka import FromDishka
from litestar import MediaType, Request, Response, get, post, route
from litestar.enums import HttpMethod
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter

from orbsurv.adapters.http import pages
from orbsurv.adapters.http.auth import SECURITY, current_principal
from orbsurv.adapters.http.bodies import decode_body
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import app_container, inject, inject_app
from orbsurv.adapters.http.openapi import documented
from orbsurv.adapters.http.schemas import (
    Accepted,
    Email,
    Name,
    NewPassword,
    Password,
    Username,
    UserOut,
    blank_to_none,
    request_email,
)
from orbsurv.application.account.mail_requests import (
    MailRequest,
    RequestPasswordReset,
    ResendVerification,
)
from orbsurv.application.account.portal import (
    UNSET as KEEP,
)
from orbsurv.application.account.portal import (
    ChangePassword,
    DashboardSummary,
    ManageSettings,
    OrganizationChanges,
    ProfileChanges,
    RequestEmailChange,
    UpdateOrganization,
    UpdateProfile,
)
from orbsurv.application.account.tokens import ResetPassword, VerifyEmail
from orbsurv.application.identity.profile import GetProfile
from orbsurv.domain.errors import DomainError, FieldInvalid
from orbsurv.domain.identity import UserSettings

Token = Annotated[str, Parameter(max_length=256, description="The token from the link in the mail")]
UPDATE = [HttpMethod.PATCH, HttpMethod.PUT]
UPDATE_NOTE = "PATCH and PUT both merge: fields left out keep their value; unknown fields are 422."


class EmailOnly(msgspec.Struct, kw_only=True):
    email: Email


class ResetConfirmation(msgspec.Struct, kw_only=True):
    token: Annotated[str, msgspec.Meta(max_length=256)]
    new_password: NewPassword


class VerifiedOut(msgspec.Struct, frozen=True):
    status: str
    email: str


class Done(msgspec.Struct, frozen=True):
    status: str


ACCEPTED_RESET = Accepted(
    status="accepted",
    message="If an account uses this address, a link to reset its password is on its way.",
)
ACCEPTED_VERIFY = Accepted(
    status="accepted",
    message="If this address needs confirming, a new link is on its way.",
)


async def _email_request(request: Request[Any, Any, Any]) -> MailRequest:
    data = await decode_body(request, EmailOnly)
    assert data is not None
    return MailRequest(email=request_email(request, data.email), context=request_context(request))


@get("/auth/verify", tags=["account"], summary="Confirm an email address (JSON)")
@inject
async def verify(
    request: Request[Any, Any, Any], token: Token, use_case: FromDishka[VerifyEmail]
) -> VerifiedOut:
    verified = await use_case(token, request_context(request))
    return VerifiedOut(
        status="email_changed" if verified.changed_email else "verified", email=verified.user.email
    )


HTML_ERRORS = {
    400: ResponseSpec(
        data_container=str,
        media_type=MediaType.HTML,
        description="The link is invalid, expired or used: an HTML page that says so.",
        generate_examples=False,
    )
}


@get(
    "/auth/verify-page",
    tags=["account"],
    summary="The page a verification or email-change link opens (HTML)",
    description=(
        "Shows a form that confirms on POST; opening the link spends nothing (mail scanners "
        "fetch links). API clients confirm with GET /auth/verify."
    ),
    media_type="text/html",
    responses=HTML_ERRORS,
)
async def verify_page(token: Token = "") -> Response[Any]:
    if not token:
        return pages.html(400, *pages.NOT_VERIFIED)
    return pages.html(200, *pages.CONFIRM_EMAIL)


@post(
    "/auth/verify-page",
    tags=["account"],
    summary="Confirm an email address from the link's page (HTML form post)",
    description="Spends the token from the page's address; answers an HTML page.",
    media_type="text/html",
    status_code=200,
    responses=HTML_ERRORS,
)
@inject
async def verify_page_confirm(
    request: Request[Any, Any, Any], use_case: FromDishka[VerifyEmail], token: Token = ""
) -> Response[Any]:
    try:
        await use_case(token, request_context(request))
    except DomainError:
        return pages.html(400, *pages.NOT_VERIFIED)
    return pages.html(200, *pages.VERIFIED)


@post(
    "/auth/verify/resend",
    tags=["account"],
    summary="Send the confirmation link again",
    description=(
        "202 always, the same body whether or not the address has an account. The only refusal "
        "is the client's own budget (20 requests an hour per client IP): 429 `rate_limited` "
        "with Retry-After. Naming an address never spends a budget its owner needs: mails are "
        "counted per account (5 an hour), and past that none is sent while a link already "
        "sent is live (it is in the owner's mailbox)."
    ),
    status_code=202,
    opt=documented(
        body=EmailOnly,
        form=True,
        problems={429: "rate_limited: this client's 20 requests an hour are spent"},
    ),
)
@inject
async def resend_verification(
    request: Request[Any, Any, Any], use_case: FromDishka[ResendVerification]
) -> Accepted:
    await use_case(await _email_request(request))
    return ACCEPTED_VERIFY


@post(
    ["/auth/password-reset/requests", "/auth/password/forgot", "/auth/forgot"],
    tags=["account"],
    summary="Ask for a password reset link (JSON or form)",
    description=(
        "202, the same body and similar time whether or not the address has an account. The "
        "only refusal is the client's own budget (20 requests an hour per client IP): 429 "
        "`rate_limited` with Retry-After, never because others named the same address. Reset "
        "mails are counted per account (5 an hour); past that no new mail is sent while a "
        "link already sent is live (it is in the owner's mailbox), and a new one once none is, "
        "so the owner always holds a working link. Works for an account whose sign-ins are "
        "locked, and ends the lock-out."
    ),
    status_code=202,
    opt=documented(
        body=EmailOnly,
        form=True,
        problems={429: "rate_limited: this client's 20 requests an hour are spent"},
    ),
)
@inject
async def request_reset(
    request: Request[Any, Any, Any], use_case: FromDishka[RequestPasswordReset]
) -> Accepted:
    await use_case(await _email_request(request))
    return ACCEPTED_RESET


@post(
    ["/auth/password-reset/confirm", "/auth/password/reset", "/auth/reset"],
    tags=["account"],
    summary="Set a new password with a reset token",
    description=(
        "Single use; ends every session and every other outstanding link of the account; does "
        "not sign in. A link issued before the password, email, role or active state last "
        "changed is 400 `invalid_token`."
    ),
    status_code=200,
    opt=documented(body=ResetConfirmation, form=True),
)
@inject
async def confirm_reset(
    request: Request[Any, Any, Any], use_case: FromDishka[ResetPassword]
) -> Done:
    data = await decode_body(request, ResetConfirmation)
    assert data is not None
    await use_case(data.token, data.new_password, request_context(request))
    return Done(status="password_reset")


# The page's fields may arrive empty (it answers with the form and a message, not a 422).
PageNewPassword = Annotated[
    str, msgspec.Meta(max_length=4096, description="The new password: 8 to 128 characters")
]


class ResetPageForm(msgspec.Struct, kw_only=True):
    password: PageNewPassword = ""
    again: PageNewPassword = ""


@get(
    "/auth/password-reset/page",
    tags=["account"],
    summary="The page a password reset link opens (HTML form)",
    description="Shows the form; the token is spent only when the form is posted.",
    media_type="text/html",
)
async def reset_page() -> Response[Any]:
    return pages.html(200, *pages.reset_form())


@post(
    "/auth/password-reset/page",
    tags=["account"],
    summary="Set a new password from the reset link's page (HTML form post)",
    description=(
        "Form fields `password` and `again` (a JSON object with them is read alike); the token "
        "comes from the page's address (`?token=`). A weak or mismatched password shows the "
        "form again (400) and keeps the token."
    ),
    media_type="text/html",
    status_code=200,
    responses=HTML_ERRORS,
    opt=documented(
        body=ResetPageForm,
        form=True,
        body_required=False,
        problems={400: "A body that is not JSON or form data answers problem+json instead."},
    ),
)
@inject
async def reset_page_submit(
    request: Request[Any, Any, Any], use_case: FromDishka[ResetPassword], token: Token = ""
) -> Response[Any]:
    data = await decode_body(request, ResetPageForm, optional=True) or ResetPageForm()
    if not data.password and not data.again:
        return pages.html(400, *pages.reset_form("Enter the new password in both fields."))
    if data.password != data.again:
        return pages.html(400, *pages.reset_form("The two passwords differ."))
    try:
        await use_case(token, data.password, request_context(request))
    except FieldInvalid as exc:
        return pages.html(400, *pages.reset_form(f"The new password {exc.message}."))
    except DomainError as exc:
        if exc.code != "invalid_token":
            raise
        return pages.html(400, *pages.NOT_RESET)
    return pages.html(200, *pages.RESET_DONE)


# --- the portal -------------------------------------------------------------------------------


class ProfileUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType | None = msgspec.UNSET
    organization: Name | msgspec.UnsetType | None = msgspec.UNSET
    username: Username | msgspec.UnsetType | None = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET  # accepted when it is the current address


class EmailChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    new_email: Email
    current_password: Password


class PasswordChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    current_password: Password
    new_password: NewPassword


class OrganizationUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    organization: Name | msgspec.UnsetType | None = msgspec.UNSET
    timezone: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=64,
                description="An IANA time zone name, like Europe/Paris (validated against the "
                "server's time zone database)",
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET


# The web client's checkboxes post "true" (checked; unchecked boxes are left out): booleans of
# the settings bodies take JSON booleans or the strings "true"/"false".
FormBool = Annotated[
    bool | Literal["true", "false"],
    msgspec.Meta(description='true or false; the strings "true" and "false" are accepted too'),
]
Switch = FormBool | msgspec.UnsetType


class NotificationSettings(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Notification switches. ``email_notifications``, ``alert_notifications`` and
    ``system_updates`` are the web client's profile page; any other key is a 422."""

    email_alerts: Switch = msgspec.UNSET
    security_alerts: Switch = msgspec.UNSET
    product_updates: Switch = msgspec.UNSET
    weekly_digest: Switch = msgspec.UNSET
    email_notifications: Switch = msgspec.UNSET
    alert_notifications: Switch = msgspec.UNSET
    system_updates: Switch = msgspec.UNSET


class AutomationSettings(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Automation switches. ``auto_patrol`` and ``smart_alerts`` are the web client's profile
    page; any other key is a 422."""

    auto_scan_uploads: Switch = msgspec.UNSET
    auto_publish_versions: Switch = msgspec.UNSET
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | msgspec.UnsetType = msgspec.UNSET
    auto_patrol: Switch = msgspec.UNSET
    smart_alerts: Switch = msgspec.UNSET


class SettingsOut(msgspec.Struct, frozen=True):
    notifications: dict[str, bool]
    automation: dict[str, bool | int]
    timezone: str | None


class AuditLine(msgspec.Struct, frozen=True):
    id: str
    action: str
    occurred_at: datetime
    ip: str | None
    target_type: str | None
    target_id: str | None


class DashboardOut(msgspec.Struct, frozen=True):
    user: UserOut
    metrics: dict[str, int]
    recent_logs: list[AuditLine]
    command_center_url: str


def _given(value: Any) -> Any:
    """``UNSET`` (left out) and ``""`` (an empty form input) keep the stored value."""
    if value is msgspec.UNSET:
        return KEEP
    if isinstance(value, str):
        return blank_to_none(value) if value.strip() else KEEP
    return value


# Files a system's zoneinfo directory holds that are not IANA zone names: ``localtime`` is the
# host's own setting, ``posixrules`` and ``Factory`` are tooling artifacts.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _zones() -> frozenset[str]:
    """IANA time zone names this host knows (``zoneinfo``), without ``_NOT_ZONES``."""
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def _checked_timezone(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if value not in _zones():
        raise FieldInvalid("timezone", "is not an IANA time zone name (like Europe/Paris)")
    return value


def _settings_out(stored: UserSettings) -> SettingsOut:
    return SettingsOut(
        notifications=stored.notifications, automation=stored.automation, timezone=stored.timezone
    )


@get("/dashboard/summary", tags=["portal"], summary="Your dashboard", security=SECURITY)
@inject
async def dashboard(
    request: Request[Any, Any, Any], use_case: FromDishka[DashboardSummary]
) -> DashboardOut:
    summary = await use_case(await current_principal(request))
    return DashboardOut(
        user=UserOut.of(summary.user),
        metrics=summary.metrics,
        recent_logs=[msgspec.convert(line, AuditLine) for line in summary.recent_logs],
        command_center_url=summary.command_center_url,
    )


@route(
    "/account/profile",
    http_method=UPDATE,
    tags=["portal"],
    summary="Update your profile",
    description=UPDATE_NOTE,
    security=SECURITY,
)
@inject_app
async def update_profile(
    request: Request[Any, Any, Any],
    data: JSONBody[ProfileUpdate],
    profile: FromDishka[GetProfile],
) -> UserOut:
    principal = await current_principal(request)
    if isinstance(data.email, str) and data.email.strip():
        current = await profile(principal)  # may read on a connection of its own: done first
        if request_email(request, data.email) != current.email:
            raise FieldInvalid("email", "cannot change here; use PATCH /api/v1/account/email")
    changes = ProfileChanges(
        name=_given(data.name),
        organization=_given(data.organization),
        username=_given(data.username),
    )
    # The request's connection is taken only now, so the request never holds two at once.
    async with app_container(request.app.state)() as scope:
        use_case = await scope.get(UpdateProfile)
        return UserOut.of(await use_case(principal, changes, request_context(request)))


@route(
    "/account/email",
    http_method=UPDATE,
    tags=["portal"],
    summary="Change your email address",
    description=(
        "202: the change applies when the link sent to the new address is opened; "
        "the old address gets a notice. Applying it ends every other outstanding link of the "
        "account. Wrong current password: 400 `wrong_password`; wrong guesses spend the "
        "account's sign-in budget: once spent, 429 `too_many_attempts` with Retry-After. "
        "Confirmation mails are bounded per account like reset mails: at most 5 links an "
        "hour, and none while a link already sent is still live past that; the answer is "
        "202 either way."
    ),
    status_code=202,
    security=SECURITY,
)
@inject
async def change_email(
    request: Request[Any, Any, Any],
    data: JSONBody[EmailChange],
    use_case: FromDishka[RequestEmailChange],
) -> Accepted:
    principal = await current_principal(request)
    await use_case(
        principal,
        request_email(request, data.new_email, field="new_email"),
        data.current_password,
        request_context(request),
    )
    return Accepted(status="accepted", message="Open the link sent to the new address to finish.")


@route(
    "/account/password",
    http_method=UPDATE,
    tags=["portal"],
    summary="Change your password",
    description=(
        "Wrong current password: 400 `wrong_password`; wrong guesses spend the account's sign-in "
        "budget: once spent, 429 `too_many_attempts` with Retry-After. Other sessions and every "
        "outstanding reset or verification link end; this session stays. 409 `concurrent_update` "
        "when the account changed during the request."
    ),
    status_code=200,
    security=SECURITY,
)
@inject
async def change_password(
    request: Request[Any, Any, Any],
    data: JSONBody[PasswordChange],
    use_case: FromDishka[ChangePassword],
) -> Done:
    principal = await current_principal(request)
    await use_case(principal, data.current_password, data.new_password, request_context(request))
    return Done(status="password_changed")


@route(
    "/account/organization",
    http_method=UPDATE,
    tags=["portal"],
    summary="Set your organization and time zone",
    description=f"{UPDATE_NOTE} Both fields are optional. `organization: null` clears the "
    'organization; `""` keeps it, like a field left out. A time zone is never cleared: `null` '
    'or `""` keeps it. `{}` changes nothing and answers the account as stored.',
    security=SECURITY,
)
@inject
async def update_organization(
    request: Request[Any, Any, Any],
    data: JSONBody[OrganizationUpdate],
    use_case: FromDishka[UpdateOrganization],
) -> UserOut:
    principal = await current_principal(request)
    timezone = None if data.timezone is msgspec.UNSET else _checked_timezone(data.timezone)
    changes = OrganizationChanges(organization=_given(data.organization), timezone=timezone)
    return UserOut.of(await use_case(principal, changes, request_context(request)))


@get("/settings", tags=["portal"], summary="Your settings", security=SECURITY)
@inject
async def get_settings(
    request: Request[Any, Any, Any], use_case: FromDishka[ManageSettings]
) -> SettingsOut:
    return _settings_out(await use_case.get(await current_principal(request)))


def _set_fields(data: msgspec.Struct) -> dict[str, Any]:
    """The keys the body gave, with ``"true"``/``"false"`` read as booleans."""
    given: dict[str, Any] = {}
    for key, value in msgspec.structs.asdict(data).items():
        if value is msgspec.UNSET:
            continue
        given[key] = value == "true" if isinstance(value, str) else value
    return given


SETTINGS_NOTE = (
    f'{UPDATE_NOTE} Booleans take true/false or the strings "true"/"false" (what a '
    "checked or unchecked form checkbox sends); keys left out keep their value."
)


@route(
    "/settings/notifications",
    http_method=UPDATE,
    tags=["portal"],
    summary="Merge notification settings",
    description=SETTINGS_NOTE,
    security=SECURITY,
)
@inject
async def update_notifications(
    request: Request[Any, Any, Any],
    data: JSONBody[NotificationSettings],
    use_case: FromDishka[ManageSettings],
) -> dict[str, bool | int]:
    principal = await current_principal(request)
    stored = await use_case.merge(
        principal, "notifications", _set_fields(data), request_context(request)
    )
    return dict(stored.notifications)


@route(
    "/settings/automation",
    http_method=UPDATE,
    tags=["portal"],
    summary="Merge automation settings",
    description=SETTINGS_NOTE,
    security=SECURITY,
)
@inject
async def update_automation(
    request: Request[Any, Any, Any],
    data: JSONBody[AutomationSettings],
    use_case: FromDishka[ManageSettings],
) -> dict[str, bool | int]:
    principal = await current_principal(request)
    stored = await use_case.merge(
        principal, "automation", _set_fields(data), request_context(request)
    )
    return dict(stored.automation)


AUTH_ROUTES = [
    verify,
    verify_page,
    verify_page_confirm,
    resend_verification,
    request_reset,
    confirm_reset,
    reset_page,
    reset_page_submit,
]
PORTAL_ROUTES = [
    dashboard,
    update_profile,
    change_email,
    change_password,
    update_organization,
    get_settings,
    update_notifications,
    update_automation,
]
