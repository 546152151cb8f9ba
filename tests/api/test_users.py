from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.test_conventions import assert_problem


async def test_create_user(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/users",
        json={
            "email": "  Ada@Example.com ",
            "password": "correct horse battery",
            "name": "Ada",
            "organization": "",
            "username": "",
            "role": "dev",
            "unknown": "ignored",
        },
    )
    assert response.status_code == 201, response.text
    user = response.json()["user"]
    assert user["email"] == "ada@example.com"
    assert user["role"] == "user"  # a role field is ignored
    assert user["organization"] is None
    assert user["username"] is None
    assert user["name"] == "Ada"
    assert user["created_at"].endswith("Z")
    assert "password_hash" not in user
    assert "password" not in user


async def test_taken_email_is_a_conflict_and_changes_nothing(
    client: AsyncTestClient[Litestar],
) -> None:
    first = await client.post(
        "/api/v1/users", json={"email": "a@example.com", "password": "correct horse"}
    )
    assert first.status_code == 201
    again = await client.post(
        "/api/v1/users", json={"email": "A@EXAMPLE.COM", "password": "other horse"}
    )
    assert_problem(again, 409, "email_taken")


async def test_weak_and_absurd_passwords(client: AsyncTestClient[Litestar]) -> None:
    for password, message in [
        ("short", "at least 8"),
        ("password123", "too common"),
        ("x" * 129, "at most 128"),
    ]:
        response = await client.post(
            "/api/v1/users", json={"email": "b@example.com", "password": password}
        )
        body = assert_problem(response, 422, "validation_error")
        assert message in body["detail"]
        assert body["errors"][0]["field"] == "password"
    huge = await client.post(
        "/api/v1/users", json={"email": "b@example.com", "password": "x" * 900_000}
    )
    assert huge.status_code == 422
    ok = await client.post(
        "/api/v1/users", json={"email": "b@example.com", "password": "correct horse"}
    )
    assert ok.status_code == 201  # none of the failures left anything behind


async def test_invalid_email(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/users", json={"email": "not-an-address", "password": "correct horse"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "email"
