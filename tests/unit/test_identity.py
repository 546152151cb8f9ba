from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
from orbsurv.domain.errors import Conflict, FieldInvalid
from orbsurv.domain.identity import Role, check_password_policy, normalise_email
from tests.fakes.identity import (
    FakeClock,
    FakePasswordHasher,
    FakeUnitOfWork,
    FakeUserRepository,
)


@pytest.mark.parametrize("password", ["a" * 7, ""])
def test_short_passwords_are_refused(password: str) -> None:
    with pytest.raises(FieldInvalid, match="at least 8"):
        check_password_policy(password)


def test_long_passwords_are_refused_not_truncated() -> None:
    check_password_policy("x" * 120 + "y" * 8)  # 128 is fine
    with pytest.raises(FieldInvalid, match="at most 128"):
        check_password_policy("x" * 129)


@pytest.mark.parametrize("password", ["password", "PASSWORD123", "iloveyou", "qwertyuiop"])
def test_common_passwords_are_refused(password: str) -> None:
    with pytest.raises(FieldInvalid, match="too common"):
        check_password_policy(password)


@given(st.text(min_size=8, max_size=32).filter(lambda p: any(not c.isascii() for c in p)))
def test_any_characters_are_allowed(password: str) -> None:
    check_password_policy(password)


def test_roles_are_ordered() -> None:
    assert Role.DEV.at_least(Role.ADMIN)
    assert Role.ADMIN.at_least(Role.USER)
    assert not Role.USER.at_least(Role.ADMIN)
    assert sorted(Role, key=lambda r: r.rank) == [Role.USER, Role.ADMIN, Role.DEV]


def test_emails_normalise() -> None:
    assert normalise_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.fixture
def parts() -> tuple[FakeUserRepository, FakeUnitOfWork, CreateUser]:
    users, uow = FakeUserRepository(), FakeUnitOfWork()
    return users, uow, CreateUser(users, FakePasswordHasher(), uow, FakeClock())


async def test_create_user_stores_a_hash_and_commits(
    parts: tuple[FakeUserRepository, FakeUnitOfWork, CreateUser],
) -> None:
    users, uow, create = parts
    user = await create(CreateUserCommand(email="Ada@Example.com", password="correct horse"))
    assert user.email == "ada@example.com"
    assert user.role is Role.USER
    assert user.password_hash != "correct horse"
    assert user.created_at.tzinfo is not None
    assert await users.get(user.id) == user
    assert uow.commits == 1


async def test_create_user_refuses_a_taken_email_without_committing(
    parts: tuple[FakeUserRepository, FakeUnitOfWork, CreateUser],
) -> None:
    users, uow, create = parts
    await create(CreateUserCommand(email="ada@example.com", password="correct horse"))
    with pytest.raises(Conflict) as caught:
        await create(CreateUserCommand(email="ADA@example.com ", password="another horse"))
    assert caught.value.code == "email_taken"
    assert uow.commits == 1
    assert len(users.rows) == 1


async def test_create_user_applies_the_password_policy(
    parts: tuple[FakeUserRepository, FakeUnitOfWork, CreateUser],
) -> None:
    users, uow, create = parts
    with pytest.raises(FieldInvalid):
        await create(CreateUserCommand(email="ada@example.com", password="password"))
    assert users.rows == {}
    assert uow.commits == 0
