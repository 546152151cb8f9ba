"""One text, one spelling; identifiers that cannot pass for one another; errors that name what
the client sent.

Text that differs only in Unicode composition (NFD ``Se\\u0301curite\\u0301`` and NFC
``Sécurité``) is one text: stored and queried in NFC (UAX #15). Identifiers (emails, usernames,
package names) refuse mixed-script look-alikes (UTS #39) and compare case-insensitively. Every
case runs on SQLite and PostgreSQL: the two databases compare and group text byte for byte.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.main.app import make_app
from tests.api.identity_helpers import PASSWORD, fetch, sign_up, sign_up_admin
from tests.conftest import SettingsFactory, truncate_all

Client = AsyncTestClient[Litestar]
BASE = "/api/v1/software-packages"
NFC = "Sécurité"
NFD = unicodedata.normalize("NFD", NFC)


@pytest.fixture
async def both(
    database_url: str, make_settings: SettingsFactory
) -> AsyncIterator[tuple[Client, Any]]:
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    settings = make_settings(DATABASE_URL=database_url)
    async with AsyncTestClient(make_app(settings)) as client:
        yield client, settings


async def publish(
    client: Client, auth: dict[str, str], name: str, *, version: str = "1.0.0", **extra: Any
) -> Any:
    data = b"pkg!"
    body = {"package_name": name, "version": version, "file_name": "p.tgz", "size": len(data)}
    created = await client.post(f"{BASE}/uploads/init", json={**body, **extra}, headers=auth)
    if created.status_code != 201:
        return created
    upload_id = created.json()["upload_id"]
    sent = await client.patch(
        f"{BASE}/uploads/{upload_id}",
        content=data,
        headers={**auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert sent.status_code == 200, sent.text
    return await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)


def _refused(response: Any, field: str, code: str = "validation_error") -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert [error["field"] for error in body["errors"]] == [field], body
    return body


# --- one text, one spelling ----------------------------------------------------------------


async def test_a_decomposed_category_is_one_category_with_its_composed_spelling(
    both: tuple[Client, Any],
) -> None:
    client, settings = both
    ada = await sign_up(client, "ada@example.com")
    assert (await publish(client, ada, "first", category=NFD)).status_code == 200
    assert (await publish(client, ada, "second", category=NFC)).status_code == 200

    for spelling in (NFC, NFD):
        found = await client.get(BASE, params={"category": spelling}, headers=ada)
        assert found.status_code == 200, found.text
        assert sorted(item["name"] for item in found.json()["items"]) == ["first", "second"]
    stored = await fetch(settings, "SELECT DISTINCT category FROM packages")
    assert [row[0] for row in stored] == [NFC]

    admin = await sign_up_admin(client, settings)
    summary = (await client.get(f"{BASE}/admin/summary", headers=admin)).json()
    assert summary["top_categories"] == [{"name": NFC, "count": 2}]


async def test_free_text_search_finds_either_spelling(both: tuple[Client, Any]) -> None:
    client, _ = both
    ada = await sign_up(client, "ada@example.com")
    published = await publish(client, ada, "shield", description=f"Outils de {NFD} réseau")
    assert published.status_code == 200, published.text
    found = await client.get(BASE, params={"q": NFC}, headers=ada)
    assert [item["name"] for item in found.json()["items"]] == ["shield"]


async def test_a_resource_title_and_search_are_stored_and_matched_in_nfc(
    both: tuple[Client, Any],
) -> None:
    client, settings = both
    admin = await sign_up_admin(client, settings)
    created = await client.post(
        "/api/v1/resources",
        json={"title": f"Guide {NFD}", "type": "knowledge", "published": True},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["title"] == f"Guide {NFC}"
    found = await client.get("/api/v1/resources", params={"q": NFC})
    assert [item["title"] for item in found.json()["items"]] == [f"Guide {NFC}"]


async def test_a_profile_name_is_stored_in_nfc(both: tuple[Client, Any]) -> None:
    client, settings = both
    ada = await sign_up(client, "ada@example.com")
    changed = await client.patch("/api/v1/account/profile", json={"name": NFD}, headers=ada)
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == NFC
    rows = await fetch(settings, "SELECT name FROM users WHERE email = 'ada@example.com'")
    assert rows[0][0] == NFC


async def test_a_form_post_is_stored_in_nfc(both: tuple[Client, Any]) -> None:
    client, settings = both
    answer = await client.post("/api/v1/waitlist", data={"email": "w@example.com", "name": NFD})
    assert answer.status_code == 201, answer.text
    assert [row[0] for row in await fetch(settings, "SELECT name FROM waitlist_entries")] == [NFC]


async def test_a_decomposed_password_still_signs_in_as_it_was_set(
    both: tuple[Client, Any],
) -> None:
    client, _ = both
    password = f"{NFD} {PASSWORD}"
    made = await client.post(
        "/api/v1/auth/register", json={"email": "p@example.com", "password": password}
    )
    assert made.status_code == 201, made.text
    answer = await client.post(
        "/api/v1/auth/login", json={"email": "p@example.com", "password": password}
    )
    assert answer.status_code == 200, answer.text


# --- look-alike identities -----------------------------------------------------------------


async def test_a_cyrillic_look_alike_email_is_refused_beside_the_latin_one(
    both: tuple[Client, Any],
) -> None:
    client, settings = both
    await sign_up(client, "admin@example.com")
    look_alike = "\u0430dmin@example.com"  # a Cyrillic a (U+0430)
    answer = await client.post(
        "/api/v1/auth/register", json={"email": look_alike, "password": PASSWORD}
    )
    body = _refused(answer, "email", code="mixed_script")
    assert "Cyrillic" in body["errors"][0]["message"]
    assert len(await fetch(settings, "SELECT id FROM users")) == 1
    waitlist = await client.post("/api/v1/waitlist", json={"email": look_alike})
    _refused(waitlist, "email", code="mixed_script")


async def test_an_address_in_one_non_latin_script_is_still_welcome(
    both: tuple[Client, Any],
) -> None:
    client, _ = both
    answer = await client.post(
        "/api/v1/auth/register", json={"email": "zoë@example.com", "password": PASSWORD}
    )
    assert answer.status_code == 201, answer.text


async def test_a_look_alike_username_is_refused(both: tuple[Client, Any]) -> None:
    client, _ = both
    ada = await sign_up(client, "ada@example.com")
    answer = await client.patch(
        "/api/v1/account/profile", json={"username": "\u0430dmin"}, headers=ada
    )
    _refused(answer, "username")


async def test_a_case_variant_of_a_package_name_is_a_conflict(both: tuple[Client, Any]) -> None:
    client, settings = both
    ada = await sign_up(client, "ada@example.com")
    assert (await publish(client, ada, "CasePkg")).status_code == 200
    variant = await publish(client, ada, "casepkg", version="2.0.0")
    assert variant.status_code == 409, variant.text
    assert variant.json()["code"] == "package_name_taken"
    assert "CasePkg" in variant.json()["detail"]
    # the same version under another case is the existing version
    again = await publish(client, ada, "CASEPKG")
    assert again.status_code == 409, again.text
    assert [row[0] for row in await fetch(settings, "SELECT name FROM packages")] == ["CasePkg"]
    # another owner may use the name in any case
    bob = await sign_up(client, "bob@example.com")
    assert (await publish(client, bob, "casepkg")).status_code == 200


async def test_the_folded_name_is_unique_in_the_database(both: tuple[Client, Any]) -> None:
    """A race past the use case's check still meets the unique index on lower(name)."""
    client, settings = both
    ada = await sign_up(client, "ada@example.com")
    assert (await publish(client, ada, "CasePkg")).status_code == 200
    engine = make_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            row = (await conn.execute(sa.text("SELECT * FROM packages"))).mappings().one()
            copy = {**row, "id": "00000000-0000-0000-0000-000000000001", "name": "casePKG"}
            with pytest.raises(sa.exc.IntegrityError):
                await conn.execute(
                    sa.text(
                        "INSERT INTO packages (id, owner_id, name, description, category, "
                        "language, is_public, created_at, updated_at) VALUES (:id, :owner_id, "
                        ":name, :description, :category, :language, :is_public, :created_at, "
                        ":updated_at)"
                    ),
                    copy,
                )
    finally:
        await engine.dispose()


# --- errors that name what the client sent, rules the schema states ------------------------


async def test_a_single_analytics_event_names_action_as_sent(both: tuple[Client, Any]) -> None:
    client, _ = both
    single = await client.post(
        "/api/v1/analytics/events", json={"event_type": "cookie_consent", "action": "maybe"}
    )
    _refused(single, "action")
    batch = await client.post(
        "/api/v1/analytics/events",
        json={"events": [{"event_type": "page_view", "action": "x", "metadata": {"k": "v" * 501}}]},
    )
    _refused(batch, "events[0].metadata.k")


async def test_an_enum_error_lists_the_allowed_values(both: tuple[Client, Any]) -> None:
    client, settings = both
    admin = await sign_up_admin(client, settings)
    created = await client.post(
        "/api/v1/resources", json={"title": "Guide", "type": "article"}, headers=admin
    )
    body = _refused(created, "type")
    message = body["errors"][0]["message"]
    for allowed in ("api", "knowledge", "support", "updates", "'article'"):
        assert allowed in message, message
    assert "api, knowledge, support, updates" in body["detail"]
    listed = await client.get("/api/v1/resources", params={"type": "article"})
    assert "api, knowledge, support, updates" in _refused(listed, "type")["errors"][0]["message"]
    event = await client.post(
        "/api/v1/analytics/events",
        json={"events": [{"event_type": "cookie", "action": "accepted"}]},
    )
    message = _refused(event, "events[0].event_type")["errors"][0]["message"]
    assert "cookie_consent, page_view, user_activity" in message


async def test_a_package_name_outside_its_pattern_is_refused_naming_it(
    both: tuple[Client, Any],
) -> None:
    client, _ = both
    ada = await sign_up(client, "ada@example.com")
    answer = await publish(client, ada, "my package")
    message = _refused(answer, "package_name")["errors"][0]["message"]
    assert "letters, digits, '.', '_' or '-'" in message, message
    for sneaky in ("orbit\n", "\u0661.0.0"):  # a final newline; Arabic-Indic digits
        field = "package_name" if sneaky.startswith("orbit") else "version"
        refused = await client.post(
            f"{BASE}/uploads/init",
            json={
                "package_name": sneaky if field == "package_name" else "orbit",
                "version": sneaky if field == "version" else "1.0.0",
                "file_name": "p.tgz",
                "size": 1,
            },
            headers=ada,
        )
        _refused(refused, field)
    named = await client.patch("/api/v1/account/profile", json={"username": "ada\n"}, headers=ada)
    _refused(named, "username")
    too_long = await publish(client, ada, "ok", category="c" * 65)
    _refused(too_long, "category")


async def test_the_schema_states_the_rules_the_server_enforces(
    both: tuple[Client, Any],
) -> None:
    client, _ = both
    document = (await client.get("/api/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def body_of(path: str, method: str, media: str = "application/json") -> dict[str, Any]:
        operation = document["paths"][path][method]
        return resolve(operation["requestBody"]["content"][media]["schema"])

    init = body_of("/api/v1/software-packages/uploads/init", "post")["properties"]
    name = resolve(init["package_name"])
    assert name["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$(?!\\n)"
    assert (name["minLength"], name["maxLength"]) == (1, 128)
    assert "case" in name["description"]
    assert resolve(init["category"]).get("maxLength") == 64 or any(
        option.get("maxLength") == 64 for option in resolve(init["category"]).get("anyOf", [])
    )
    multipart = body_of("/api/v1/software-packages", "post", "multipart/form-data")
    assert multipart["properties"]["name"]["pattern"] == name["pattern"]

    resource = body_of("/api/v1/resources", "post")["properties"]
    assert sorted(resolve(resource["type"])["enum"]) == ["api", "knowledge", "support", "updates"]
    listing = document["paths"]["/api/v1/resources"]["get"]["parameters"]
    (type_filter,) = [p for p in listing if p["name"] == "type"]
    options = type_filter["schema"].get("oneOf", [type_filter["schema"]])
    enums = [sorted(v for v in o.get("enum", []) if v is not None) for o in options]
    assert ["api", "knowledge", "support", "updates"] in enums


async def test_case_insensitive_filters_fold_every_letter_on_both_databases(
    both: tuple[Client, Any],
) -> None:
    client, _ = both
    ada = await sign_up(client, "ada@example.com")
    published = await publish(client, ada, "ecole", category="ÉCOLE", description="Ångström")
    assert published.status_code == 200, published.text
    for params in ({"category": "école"}, {"q": "ångström"}):
        found = await client.get(BASE, params=params, headers=ada)
        assert [item["name"] for item in found.json()["items"]] == ["ecole"], params
