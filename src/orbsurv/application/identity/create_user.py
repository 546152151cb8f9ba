"""CreateUser: the one way an account comes into being (CLI, seeding, registration)."""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.ports import PasswordHasher, UserRepository
from orbsurv.application.ports import Clock, UnitOfWork
from orbsurv.domain.errors import Conflict
from orbsurv.domain.identity import Role, User, check_password_policy, new_id, normalise_email


@dataclass(frozen=True, slots=True)
class CreateUserCommand:
    email: str
    password: str
    role: Role = Role.USER
    name: str | None = None
    organization: str | None = None
    username: str | None = None
    #: True for accounts an operator makes (``orbsurv create-user``, the ``SUPERUSER_*`` seed):
    #: the operator vouches for the address, so ``AUTH_REQUIRE_VERIFIED_EMAIL`` lets them in.
    email_verified: bool = False


class CreateUser:
    def __init__(
        self, users: UserRepository, hasher: PasswordHasher, uow: UnitOfWork, clock: Clock
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: CreateUserCommand) -> User:
        user = await self.stage(command)
        await self._uow.commit()
        return user

    async def stage(self, command: CreateUserCommand) -> User:
        """Add the user to the current transaction without committing it."""
        check_password_policy(command.password)
        # Hash before the first query: the transaction (and on SQLite its lock) starts later.
        password_hash = await self._hasher.hash(command.password)
        email = normalise_email(command.email)
        if await self._users.get_by_email(email) is not None:
            raise Conflict("An account with this email already exists.", code="email_taken")
        username = command.username.lower() if command.username else None
        if username is not None and await self._users.get_by_username(username) is not None:
            raise Conflict("This username is taken.", code="username_taken")
        now = self._clock.now()
        user = User(
            id=new_id(),
            email=email,
            password_hash=password_hash,
            role=command.role,
            created_at=now,
            updated_at=now,
            name=command.name,
            organization=command.organization,
            username=username,
            email_verified=command.email_verified,
        )
        await self._users.add(user)
        return user
