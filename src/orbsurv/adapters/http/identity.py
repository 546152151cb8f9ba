"""Identity routes."""

from __future__ import annotations

import msgspec
from dishka import FromDishka
from litestar import post
from litestar.params import JSONBody

from orbsurv.adapters.http.di import inject
from orbsurv.adapters.http.schemas import Email, Name, Password, Username, UserOut, blank_to_none
from orbsurv.adapters.validation import checked_email
from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
from orbsurv.domain.identity import Role


class RegistrationRequest(msgspec.Struct, kw_only=True):
    email: Email
    password: Password
    name: Name | None = None
    organization: Name | None = None
    username: Username | None = None


class UserCreated(msgspec.Struct, frozen=True):
    user: UserOut


def registration_command(data: RegistrationRequest) -> CreateUserCommand:
    """Any ``role`` field is ignored: a new account is always a ``user``."""
    return CreateUserCommand(
        email=checked_email(data.email),
        password=data.password,
        role=Role.USER,
        name=blank_to_none(data.name),
        organization=blank_to_none(data.organization),
        username=blank_to_none(data.username),
    )


@post(
    "/users",
    status_code=201,
    tags=["identity"],
    summary="Create an account (resource style, no tokens)",
    description="409 `email_taken` when the address is registered; 422 for a weak password.",
)
@inject
async def create_user(
    data: JSONBody[RegistrationRequest], use_case: FromDishka[CreateUser]
) -> UserCreated:
    user = await use_case(registration_command(data))
    return UserCreated(user=UserOut.of(user))
