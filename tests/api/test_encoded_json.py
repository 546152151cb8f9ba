"""``EncodedJson`` answers as Litestar's generic path would, and documents the same schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get
from litestar.datastructures import Cookie, ResponseHeader
from litestar.testing import AsyncTestClient

from orbsurv.adapters.http.encoded import EncodedJson
from tests.api.identity_helpers import sign_up


class Thing(msgspec.Struct):
    name: str
    at: datetime
    tags: list[str]
    note: str | None = None


THING = Thing(name='ünïcode \u2028 "quoted"', at=datetime(2026, 1, 2, 3, 4, 5, 6, UTC), tags=[])


@get("/plain", sync_to_thread=False)
def plain() -> Thing:
    return THING


@get("/encoded", sync_to_thread=False)
def encoded() -> EncodedJson[Thing]:
    return EncodedJson(THING)


@get("/created", sync_to_thread=False, status_code=201)
def created() -> EncodedJson[Thing]:
    return EncodedJson(THING, status_code=201)


@get(
    "/layered",
    sync_to_thread=False,
    response_headers=[ResponseHeader(name="X-Layer", value="kept")],
    response_cookies=[Cookie(key="layer", value="kept")],
)
def layered() -> EncodedJson[Thing]:
    return EncodedJson(THING)


@pytest.fixture
async def bare() -> Any:
    async with AsyncTestClient(Litestar([plain, encoded, created, layered])) as client:
        yield client


def fields(response: Any) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name != "date"}


async def test_the_same_status_fields_and_bytes_as_the_generic_path(bare: Any) -> None:
    generic, fast = await bare.get("/plain"), await bare.get("/encoded")
    assert fast.status_code == generic.status_code == 200
    assert fast.content == generic.content
    assert fields(fast) == fields(generic)
    assert fast.headers["content-type"] == "application/json"
    assert int(fast.headers["content-length"]) == len(fast.content)
    assert msgspec.json.decode(fast.content, type=Thing) == THING


async def test_a_status_of_its_own(bare: Any) -> None:
    response = await bare.get("/created")
    assert response.status_code == 201
    assert msgspec.json.decode(response.content, type=Thing) == THING


async def test_fields_and_cookies_set_on_the_route_are_kept(bare: Any) -> None:
    response = await bare.get("/layered")
    assert response.headers["x-layer"] == "kept"
    assert response.cookies["layer"] == "kept"
    assert response.content == (await bare.get("/plain")).content


async def test_the_document_shows_the_content_schema() -> None:
    document = Litestar([plain, encoded]).openapi_schema.to_schema()
    answers = {
        path: document["paths"][path]["get"]["responses"]["200"]["content"]
        for path in ("/plain", "/encoded")
    }
    assert answers["/encoded"] == answers["/plain"]
    assert answers["/encoded"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }


async def test_the_profile_answers_like_any_json_route(
    client: AsyncTestClient[Litestar],
) -> None:
    """The profile goes by ``EncodedJson``: the middleware's fields are still there, and a
    HEAD (answered by running the GET) keeps its length."""
    auth = await sign_up(client)
    for path in ("/api/v1/users/me", "/api/v1/auth/me", "/api/v1/app/users/me"):
        answer = await client.get(path, headers=auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["email"] == "ada@example.com"
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert len(answer.headers["x-request-id"]) == 32
        head = await client.head(path, headers=auth)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == answer.headers["content-length"]
