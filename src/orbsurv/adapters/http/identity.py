"""Identity routes: registration, login, refresh, logout, sessions, profile, TOTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from dishka import FromDishka
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from orbsurv.adapters.http.auth import (
    SECURITY,
    access_token,
    bearer_token,
    check_csrf,
    cookies_of,
    current_principal,
    refresh_cookie,
    requires,
    with_session_cookies,
)
from orbsurv.adapters.http.bodies import decode_body
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import app_container, inject
from orbsurv.adapters.http.encoded import EncodedJson
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
from orbsurv.adapters.http.throttling import throttled
from orbsurv.application.identity.create_user import CreateUserCommand
from orbsurv.application.identity.login import LogIn, LoginCommand
from orbsurv.application.identity.logout import ListSessions, LogOut, LogoutCommand, RevokeSession
from orbsurv.application.identity.otp import ManageOtp
from orbsurv.application.identity.profile import GetProfile
from orbsurv.application.identity.refresh import RefreshCommand, RotateRefreshToken
from orbsurv.application.identity.register import RegisterCommand, RegisterUser
from orbsurv.application.identity.sessions import IssuedTokens
from orbsurv.application.throttle import Bucket
from orbsurv.domain.errors import FieldInvalid, Unauthenticated
from orbsurv.domain.identity import Permission, Principal, Role, Scope
from orbsurv.domain.pagination import PageRequest

Otp = Annotated[str, msgspec.Meta(max_length=16)]
Token = Annotated[str, msgspec.Meta(max_length=512)]


class RegistrationRequest(msgspec.Struct, kw_only=True):
    email: Email
    password: NewPassword
    name: Name | None = None
    organization: Name | None = None
    username: Username | None = None


class UserCreated(msgspec.Struct, frozen=True):
    user: UserOut


class TokenPair(msgspec.Struct, frozen=True):
    """RFC 6749 section 5.1 access token response, plus the signed-in user."""

    access_token: Annotated[str, msgspec.Meta(description="JWT, send as `Bearer`")]
    refresh_token: Annotated[str, msgspec.Meta(description="Opaque, single use")]
    token_type: Literal["bearer"]
    expires_in: Annotated[int, msgspec.Meta(ge=1, description="Access token lifetime, seconds")]
    role: Literal["user", "admin", "dev"]
    user: UserOut

    @classmethod
    def of(cls, tokens: IssuedTokens) -> TokenPair:
        return cls(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            token_type="bearer",  # noqa: S106 - the OAuth2 token type, not a secret
            expires_in=tokens.expires_in,
            role=tokens.user.role.value,
            user=UserOut.of(tokens.user),
        )


class LoginRequest(msgspec.Struct, kw_only=True):
    password: Password
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    username: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    scope: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    otp: Otp | None = None
    grant_type: Annotated[str, msgspec.Meta(max_length=32)] | None = None


class LoginForm(msgspec.Struct, kw_only=True):
    """The OAuth2 password grant form (RFC 6749 section 4.3.2), as Swagger's Authorize sends it."""

    username: Annotated[str, msgspec.Meta(max_length=320, description="Email or username")]
    password: Password
    grant_type: Literal["password"] | None = None
    scope: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    otp: Otp | None = None


# JSON sign-in names the account by email or by username.
LoginJson = Annotated[
    LoginRequest,
    msgspec.Meta(
        extra_json_schema={"anyOf": [{"required": ["email"]}, {"required": ["username"]}]}
    ),
]


class RefreshRequest(msgspec.Struct, kw_only=True):
    refresh_token: Token | None = None


class LogoutRequest(msgspec.Struct, kw_only=True):
    everywhere: bool = False
    refresh_token: Token | None = None


class SessionOut(msgspec.Struct, frozen=True):
    id: str
    scope: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class SessionPage(msgspec.Struct, frozen=True):
    items: list[SessionOut]
    total: int
    page: int
    page_size: int
    pages: int


class PasswordConfirmation(msgspec.Struct, kw_only=True):
    password: Password


class OtpCode(msgspec.Struct, kw_only=True):
    otp: Otp


class OtpDisable(msgspec.Struct, kw_only=True):
    password: Password
    otp: Otp | None = None


class OtpSetup(msgspec.Struct, frozen=True):
    secret: str
    otpauth_uri: str


class OtpState(msgspec.Struct, frozen=True):
    otp_enabled: bool


def _field_error(field: str, message: str) -> ValidationException:
    return ValidationException(extra=[{"key": field, "message": message}])


def _account(request: Request[Any, Any, Any], data: RegistrationRequest) -> CreateUserCommand:
    """Any ``role`` field is ignored: a new account is always a ``user``."""
    return CreateUserCommand(
        email=request_email(request, data.email),
        password=data.password,
        role=Role.USER,
        name=blank_to_none(data.name),
        organization=blank_to_none(data.organization),
        username=blank_to_none(data.username),
    )


def _scope(raw: str | None) -> Scope:
    """OAuth2 scopes are space-separated; ``""`` counts as absent."""
    words = (raw or "").split()
    if not words or words == ["user"]:
        return Scope.USER
    if "dev" in words and set(words) <= {"dev", "user"}:
        return Scope.DEV
    raise _field_error("scope", "must be 'user' or 'dev'")


def _tokens_response(
    request: Request[Any, Any, Any], tokens: IssuedTokens, status: int
) -> Response[Any]:
    return with_session_cookies(Response(TokenPair.of(tokens), status_code=status), request, tokens)


ACCEPTED_REGISTRATION = Accepted(
    status="accepted", message="If the address can be used, a verification link is on its way."
)
VERIFIED_MODE_NOTE = (
    "With AUTH_REQUIRE_VERIFIED_EMAIL=true: 202 `{status, message}` without tokens or account, "
    "the same answer whether or not the address was new (no account enumeration); "
    "POST /auth/register and POST /users answer alike."
)

REGISTRATION_LIMIT = (
    "Rate limited per client IP, every route that creates an account together "
    "(/auth/register, /users, /auth/register-from-order; `REGISTRATION_RATE_LIMIT` per "
    "`REGISTRATION_RATE_WINDOW_SECONDS`, default 10 an hour): 429 `rate_limited` with "
    "`Retry-After` beyond."
)
REGISTRATION_PROBLEMS = {429: "rate_limited: this client IP's budget is spent; see Retry-After."}


@post(
    "/auth/register",
    tags=["identity"],
    summary="Create an account and sign in",
    description=(
        "201 with a token pair and session cookies; an address already registered is 409 "
        f"`email_taken`. {VERIFIED_MODE_NOTE} A `role` field is ignored. {REGISTRATION_LIMIT}"
    ),
    status_code=201,
    opt={
        **documented(responses={201: TokenPair, 202: Accepted}, problems=REGISTRATION_PROBLEMS),
        **throttled(Bucket.REGISTRATION),
    },
)
@inject
async def register(
    request: Request[Any, Any, Any],
    data: JSONBody[RegistrationRequest],
    use_case: FromDishka[RegisterUser],
) -> Response[Any]:
    registration = await use_case(
        RegisterCommand(account=_account(request, data), context=request_context(request))
    )
    if registration.tokens is None:
        return Response(ACCEPTED_REGISTRATION, status_code=202)
    return _tokens_response(request, registration.tokens, 201)


@post(
    "/users",
    status_code=201,
    tags=["identity"],
    summary="Create an account (resource style, no tokens)",
    description=(
        "201 `{user}`; 409 `email_taken` when the address is registered; 422 for a weak "
        f"password. {VERIFIED_MODE_NOTE} {REGISTRATION_LIMIT}"
    ),
    responses={
        202: ResponseSpec(
            Accepted, description="Verified-email mode: accepted", generate_examples=False
        )
    },
    opt={
        **documented(responses={201: UserCreated}, problems=REGISTRATION_PROBLEMS),
        **throttled(Bucket.REGISTRATION),
    },
)
@inject
async def create_user(
    request: Request[Any, Any, Any],
    data: JSONBody[RegistrationRequest],
    use_case: FromDishka[RegisterUser],
) -> Response[Any]:
    registration = await use_case(
        RegisterCommand(
            account=_account(request, data), context=request_context(request), sign_in=False
        )
    )
    if registration.user is None:
        return Response(ACCEPTED_REGISTRATION, status_code=202)
    return Response(UserCreated(user=UserOut.of(registration.user)), status_code=201)


@post(
    "/auth/login",
    tags=["identity"],
    summary="Sign in (JSON or the OAuth2 password form)",
    description=(
        "JSON `{email or username, password, scope?, otp?}` or form-encoded OAuth2 password "
        "flow (`username`, `password`, `scope`, `otp`). 401 `invalid_credentials` (the same for "
        "unknown accounts), 429 `too_many_attempts` with Retry-After: 5 failures in 15 min "
        "for one account from one client (client IP, an IPv6 client by its /64) lock that "
        "account for that client only, for 15 min, so a stranger's guesses never lock the "
        "owner's other clients; 100 failures for one account from all clients lock it for "
        "every client (distributed guessing stays bounded); 20 failures a minute from one "
        "client lock that client. The account is the same whether named by email or username; "
        "an unknown identifier has the same budgets. The owner is mailed once per lock-out "
        "window, and a password reset ends the lock-out. 403 `dev_role_required`, 401 "
        "`invalid_otp` "
        "(a code opens one session), 403 `email_not_verified`. An email is matched in the form "
        "registration stores (fullwidth letters and IDNA domains normalised); one that is not a "
        "valid address is 401 `invalid_credentials` too. A dev sign-in's wrong codes "
        "spend the account's one-time-code budget too, which only a right code gives back: "
        "once spent, 429 `too_many_attempts` for dev sign-ins whatever the password."
    ),
    status_code=200,
    opt=documented(
        body=LoginJson,
        form=LoginForm,
        responses={200: TokenPair},
        problems={
            401: "invalid_credentials (unknown account or wrong password), invalid_otp",
            429: "too_many_attempts: this client's guesses at the account, the account's "
            "ceiling or this client's guesses across accounts are spent",
        },
    ),
)
@inject
async def login(request: Request[Any, Any, Any], use_case: FromDishka[LogIn]) -> Response[Any]:
    data = await decode_body(request, LoginRequest)
    assert data is not None
    identifier = blank_to_none(data.email) or blank_to_none(data.username)
    if identifier is None:
        raise _field_error("email", "is required (or give a username)")
    malformed = False
    if "@" in identifier:
        # The stored form, by the rule registration applies (fullwidth letters, IDNA domains);
        # an address that breaks it matches no account and is told only invalid_credentials.
        try:
            identifier = request_email(request, identifier)
        except FieldInvalid:
            malformed = True
    tokens = await use_case(
        LoginCommand(
            identifier=identifier,
            malformed=malformed,
            password=data.password,
            context=request_context(request),
            scope=_scope(data.scope),
            otp=blank_to_none(data.otp),
        )
    )
    return _tokens_response(request, tokens, 200)


@post(
    "/auth/refresh",
    tags=["identity"],
    summary="Rotate the refresh token",
    description=(
        "The token from `{refresh_token}` or the refresh cookie (then X-CSRF-Token). Single use: "
        "the immediate parent presented again within the grace window returns the same child; "
        "any other reuse is 401 `refresh_token_reused` and ends the session. The new refresh "
        "token expires at the earlier of now + `REFRESH_TOKEN_EXPIRE_MINUTES` and the session's "
        "sign-in + `SESSION_ABSOLUTE_LIFETIME_HOURS` (default 720); a dev-scope session ends "
        "`DEV_SESSION_REAUTH_HOURS` (default 12) after its sign-in. A session ended by age or "
        "expiry answers 401 `session_expired`: sign in again (for the dev scope, with the second "
        "factor)."
    ),
    status_code=200,
    opt=documented(
        body=RefreshRequest,
        form=True,
        body_required=False,
        responses={200: TokenPair},
        problems={
            401: "invalid_refresh_token: missing, unknown, reused or revoked; "
            "refresh_token_reused: a spent token presented again (the session ends); "
            "session_expired: the session passed its absolute lifetime (dev scope: "
            "DEV_SESSION_REAUTH_HOURS) or its expiry"
        },
    ),
)
@inject
async def refresh(
    request: Request[Any, Any, Any], use_case: FromDishka[RotateRefreshToken]
) -> Response[Any]:
    data = await decode_body(request, RefreshRequest, optional=True)
    token = blank_to_none(data.refresh_token) if data else None
    if token is None and (cookie := refresh_cookie(request)) is not None:
        session_id, token = cookie
        check_csrf(request, session_id)
    if not token:
        raise Unauthenticated("Send a refresh token.", code="invalid_refresh_token")
    tokens = await use_case(RefreshCommand(refresh_token=token, context=request_context(request)))
    return _tokens_response(request, tokens, 200)


@post(
    "/auth/logout",
    tags=["identity"],
    summary="End this session (or every session)",
    description=(
        "Works with an access token, a refresh token (body or cookie) or the cookies; "
        "cookie sign-in needs X-CSRF-Token (403 `csrf_failed`). "
        "`{everywhere: true}` ends every session of the user. Clears the cookies. A refresh "
        "token acts only while the refresh route would accept it: unused, or the parent it "
        "just replaced within the grace window (then it ends that same session); a spent, "
        "revoked or unknown one is 401 `invalid_refresh_token` and ends nothing."
    ),
    status_code=204,
    opt=documented(
        body=LogoutRequest,
        form=True,
        body_required=False,
        responses={204: None},
        problems={401: "invalid_refresh_token: the refresh token is not a live one"},
    ),
)
async def logout(request: Request[Any, Any, Any]) -> Response[None]:
    data = await decode_body(request, LogoutRequest, optional=True) or LogoutRequest()
    principal: Principal | None = None
    refresh_token = blank_to_none(data.refresh_token)
    with_bearer = bearer_token(request) is not None  # a header no other site can make us send
    if refresh_token is None and (cookie := refresh_cookie(request)) is not None:
        session_id, refresh_token = cookie
        if not with_bearer:  # cookie-authenticated like any other unsafe request: CSRF applies
            check_csrf(request, session_id)
    token = access_token(request)
    if token is not None:
        try:
            principal = await request.app.state.authenticate(token)
        except Unauthenticated:
            if not refresh_token:
                raise
        else:
            if not with_bearer:
                check_csrf(request, principal.session_id)
    # The token was checked first (it may read the database on a connection of its own when
    # the cache cannot answer): the request's connection is taken only now.
    async with app_container(request.app.state)() as scope:
        use_case = await scope.get(LogOut)
        await use_case(
            LogoutCommand(
                context=request_context(request),
                principal=principal,
                refresh_token=refresh_token,
                everywhere=data.everywhere,
            )
        )
    response: Response[None] = Response(None, status_code=204)
    response.cookies.extend(cookies_of(request).clear())
    return response


@get("/auth/sessions", tags=["identity"], summary="Your live sessions", security=SECURITY)
@inject
async def list_sessions(
    principal: NamedDependency[Principal],
    paging: NamedDependency[PageRequest],
    use_case: FromDishka[ListSessions],
) -> SessionPage:
    sessions = await use_case(principal)
    chosen = sessions[paging.offset : paging.offset + paging.page_size]
    total = len(sessions)
    return SessionPage(
        items=[
            SessionOut(
                id=s.id,
                scope=s.scope.value,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                expires_at=s.expires_at,
                ip=s.ip,
                user_agent=s.user_agent,
                current=s.id == principal.session_id,
            )
            for s in chosen
        ],
        total=total,
        page=paging.page,
        page_size=paging.page_size,
        pages=-(-total // paging.page_size),
    )


@delete(
    "/auth/sessions/{session_id:str}",
    tags=["identity"],
    summary="End one of your sessions",
    status_code=204,
    security=SECURITY,
)
@inject
async def revoke_session(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    session_id: Annotated[str, msgspec.Meta(max_length=64)],
    use_case: FromDishka[RevokeSession],
) -> None:
    await use_case(principal, session_id, request_context(request))


# The profile is the hottest authenticated read: the handlers authenticate inline instead of
# through Litestar's dependency resolution, use only APP-scoped objects (warmed at start-up by
# ``make_app``; a per-request injection wrapper cost ~20% of the route's CPU) and answer with
# ``EncodedJson`` (Litestar's generic response path cost another ~25%).
@get("/users/me", tags=["identity"], summary="Your profile", security=SECURITY)
async def users_me(request: Request[Any, Any, Any]) -> EncodedJson[UserOut]:
    return await _own_profile(request)


@get("/auth/me", tags=["identity"], summary="Your profile (alias of /users/me)", security=SECURITY)
async def auth_me(request: Request[Any, Any, Any]) -> EncodedJson[UserOut]:
    return await _own_profile(request)


async def _own_profile(request: Request[Any, Any, Any]) -> EncodedJson[UserOut]:
    use_case: GetProfile = request.app.state.profile
    return EncodedJson(UserOut.of(await use_case(await current_principal(request))))


@post(
    "/auth/otp/setup",
    tags=["identity"],
    summary="Start two-factor sign-in: a new TOTP secret",
    description=(
        "Needs the password: 400 `wrong_password`; wrong guesses spend the account's sign-in "
        "budget: once spent, 429 `too_many_attempts` with Retry-After."
    ),
    status_code=200,
    security=SECURITY,
)
@inject
async def otp_setup(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    data: JSONBody[PasswordConfirmation],
    use_case: FromDishka[ManageOtp],
) -> OtpSetup:
    enrollment = await use_case.set_up(principal, data.password, request_context(request))
    return OtpSetup(secret=enrollment.secret, otpauth_uri=enrollment.otpauth_uri)


@post(
    "/auth/otp/confirm",
    tags=["identity"],
    summary="Turn two-factor sign-in on with a code from the app",
    description=(
        "400 `invalid_otp` or `otp_not_set_up`, 409 `otp_already_enabled`. Wrong codes spend "
        "the account's one-time-code budget, shared with dev sign-in and turning two-factor "
        "sign-in off: once spent, 429 `too_many_attempts` with Retry-After."
    ),
    status_code=200,
    security=SECURITY,
)
@inject
async def otp_confirm(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    data: JSONBody[OtpCode],
    use_case: FromDishka[ManageOtp],
) -> OtpState:
    await use_case.confirm(principal, data.otp, request_context(request))
    return OtpState(otp_enabled=True)


@delete(
    "/auth/otp",
    tags=["identity"],
    summary="Turn two-factor sign-in off (password and a current code)",
    description=(
        "400 `wrong_password` or `invalid_otp`. Wrong passwords spend the account's sign-in "
        "budget and wrong codes its one-time-code budget (5 in 15 minutes lock it for 15 "
        "minutes); a right password with a wrong code gives nothing back. Once either budget "
        "is spent, 429 `too_many_attempts` with Retry-After, even for the right password and "
        "code."
    ),
    status_code=200,
    security=SECURITY,
)
@inject
async def otp_disable(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    data: JSONBody[OtpDisable],
    use_case: FromDishka[ManageOtp],
) -> OtpState:
    await use_case.disable(
        principal, data.password, blank_to_none(data.otp), request_context(request)
    )
    return OtpState(otp_enabled=False)


class Pong(msgspec.Struct, frozen=True):
    status: str
    user_id: str
    scope: str


@get(
    "/admin/ping",
    tags=["console"],
    summary="Console check: needs a dev session opened with a one-time code",
    description=(
        "200 with the caller's id and scope when the session may write in the console (the dev "
        "role, signed in with a one-time code). 403 `dev_session_required` for a dev signed in "
        "without a code (a client can call it to know whether to ask for one), 403 `forbidden` "
        "for every other role, admin included."
    ),
    security=SECURITY,
    dependencies={"operator": Provide(requires(Permission.ADMINISTER))},
)
async def admin_ping(operator: NamedDependency[Principal]) -> Pong:
    return Pong(status="ok", user_id=operator.user_id, scope=operator.scope.value)


ROUTES = [
    register,
    create_user,
    login,
    refresh,
    logout,
    list_sessions,
    revoke_session,
    users_me,
    auth_me,
    otp_setup,
    otp_confirm,
    otp_disable,
    admin_ping,
]
