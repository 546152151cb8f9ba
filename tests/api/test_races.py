"""Read-modify-write on security state, on PostgreSQL: every race below is made deterministic by
pausing one request at the dangerous point (an ``asyncio.Event``, never a sleep) while the other
commits, and the change that came second in time must not be undone by a stale write.

The requests run concurrently in the test's own event loop (httpx's ASGI transport);
Litestar's test client would run them one at a time on a portal thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, ClassVar

import asyncpg
import httpx
import pyotp
import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncConnection

from orbsurv.adapters.persistence.console import SqlConsoleReader
from orbsurv.adapters.persistence.orders import SqlOrderRepository
from orbsurv.application.console.ports import ConsoleReader
from orbsurv.application.orders.ports import OrderRepository
from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import (
    PASSWORD,
    Client,
    HasherProvider,
    WrappedHasher,
    bearer,
    create_account,
    disable,
    enrol,
    fetch,
    login,
    next_code,
    register,
    sign_up_admin,
    wrong_code,
)
from tests.api.test_account import deliver, mail_to, text_of, token_in
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory, SmtpServer, truncate_all

NEW_PASSWORD = "a much better horse"
DEADLINE_SECONDS = 60


async def someone_waits_for_a_lock(dsn: str) -> bool:
    """Whether a session of this database is waiting for a lock (a row or an advisory one)."""
    conn = await asyncpg.connect(dsn)
    try:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    finally:
        await conn.close()
    return bool(waiting)


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[Client]:
    """The app in this event loop, so requests truly overlap."""
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client  # type: ignore[misc]


@pytest.fixture
async def pg_settings(make_settings: SettingsFactory, postgres_url: str) -> Settings:
    await truncate_all(postgres_url)
    # development: the master OTP opens dev sessions for devs without their own TOTP
    return make_settings(DATABASE_URL=postgres_url, ENV="development", INPROCESS_WORKER="false")


class PausingHasher(WrappedHasher):
    """argon2, except that the first verification of ``armed_for`` after arming waits, once its
    answer is known, until ``release`` is set: the caller has read the account and checked the
    password, and has not written anything yet."""

    def __init__(self) -> None:
        super().__init__()
        self.armed_for: str | None = None
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    async def verify(self, password_hash: str, password: str) -> bool:
        valid = await self.inner.verify(password_hash, password)
        if self.armed_for is not None and password == self.armed_for:
            self.armed_for = None
            self.paused.set()
            await self.release.wait()
        return valid


@pytest.fixture
async def paused(pg_settings: Settings) -> tuple[Litestar, PausingHasher]:
    """An app whose hasher can pause (serve it inside the test: its lifespan task group must
    start and end in one task)."""
    hasher = PausingHasher()
    return make_app(pg_settings, HasherProvider(hasher)), hasher


async def until_paused(hasher: PausingHasher) -> None:
    await asyncio.wait_for(hasher.paused.wait(), DEADLINE_SECONDS)


async def test_a_password_change_wins_over_a_racing_login(
    paused: tuple[Litestar, PausingHasher],
) -> None:
    app, hasher = paused
    async with serve(app) as client:
        await _password_change_wins(client, hasher)


async def _password_change_wins(client: Client, hasher: PausingHasher) -> None:
    pair = await register(client)
    client.cookies.clear()
    hasher.armed_for = PASSWORD
    racing = asyncio.create_task(login(client))  # reads the old hash, verifies it, waits
    await until_paused(hasher)
    changed = await client.patch(
        "/api/v1/account/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(pair["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    hasher.release.set()
    # The login verified the old password before the change: it must not open a session, and
    # it must not write the old hash back.
    assert_problem(await racing, 401, "invalid_credentials")
    assert_problem(await login(client), 401, "invalid_credentials")
    assert (await login(client, password=NEW_PASSWORD)).status_code == 200


async def test_a_deactivation_is_not_undone_by_a_racing_password_change(
    paused: tuple[Litestar, PausingHasher], pg_settings: Settings
) -> None:
    app, hasher = paused
    async with serve(app) as client:
        await _deactivation_stands(app, client, hasher, pg_settings)


async def _deactivation_stands(
    app: Litestar, client: Client, hasher: PausingHasher, pg_settings: Settings
) -> None:
    await create_account(app, "dev@example.com", Role.DEV)
    dev = (await login(client, "dev@example.com", scope="dev", otp="000000")).json()
    pair = await register(client)
    client.cookies.clear()
    [row] = await fetch(pg_settings, "SELECT id FROM users WHERE email = 'ada@example.com'")
    hasher.armed_for = PASSWORD
    racing = asyncio.create_task(
        client.patch(
            "/api/v1/account/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(pair["access_token"]),
        )
    )
    await until_paused(hasher)
    off = await client.patch(
        f"/api/v1/admin/users/{row.id}",
        json={"is_active": False},
        headers=bearer(dev["access_token"]),
    )
    assert off.status_code == 200, off.text
    hasher.release.set()
    assert_problem(await racing, 409, "concurrent_update")
    [state] = await fetch(
        pg_settings, "SELECT is_active FROM users WHERE email = 'ada@example.com'"
    )
    assert state.is_active is False
    for password in (PASSWORD, NEW_PASSWORD):
        assert_problem(await login(client, password=password), 401, "invalid_credentials")


async def test_a_totp_code_opens_one_session_however_many_logins_carry_it(
    pg_settings: Settings,
) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        await create_account(app, "dev@example.com", Role.DEV)
        plain = (await login(client, "dev@example.com")).json()
        auth = bearer(plain["access_token"])
        client.cookies.clear()
        totp = await enrol(client, auth)
        fresh = next_code(totp)  # the next step: unused, in window
        answers = await asyncio.gather(
            *(login(client, "dev@example.com", scope="dev", otp=fresh) for _ in range(4))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 401, 401, 401], [a.text for a in answers]
        for answer in answers:
            if answer.status_code == 401:
                assert_problem(answer, 401, "invalid_otp")
        sessions = await fetch(
            pg_settings, "SELECT id FROM sessions WHERE scope = 'dev' AND revoked_at IS NULL"
        )
        assert len(sessions) == 1


async def test_one_code_confirms_two_factor_once(pg_settings: Settings) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        auth = bearer((await register(client))["access_token"])
        client.cookies.clear()
        setup = await client.post(
            "/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth
        )
        code = pyotp.TOTP(setup.json()["secret"]).now()
        answers = await asyncio.gather(
            *(
                client.post("/api/v1/auth/otp/confirm", json={"otp": code}, headers=auth)
                for _ in range(4)
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [
            a.text for a in answers
        ]
        enabled = await fetch(pg_settings, "SELECT otp_enabled, otp_last_step FROM users")
        assert [row.otp_enabled for row in enabled] == [True]


class LockGate:
    """Holds the first caller of ``lock_active`` after it returns, until the second caller has
    either returned too (no lock: both would count two devs) or is seen waiting for a lock."""

    def __init__(self, postgres_url: str) -> None:
        self.dsn = postgres_url.replace("+asyncpg", "")
        self.calls = 0
        self.first_counted = asyncio.Event()
        self.second_entered = asyncio.Event()
        self.second_done = asyncio.Event()
        self.go = asyncio.Event()

    async def someone_waits_for_a_lock(self) -> bool:
        return await someone_waits_for_a_lock(self.dsn)


class GatedReader:
    def __init__(self, inner: SqlConsoleReader, gate: LockGate) -> None:
        self.inner = inner
        self.gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def lock_active(self, role: Role) -> int:
        gate = self.gate
        gate.calls += 1
        if gate.calls == 1:
            count = await self.inner.lock_active(role)
            gate.first_counted.set()
            await gate.go.wait()
            return count
        gate.second_entered.set()
        try:
            return await self.inner.lock_active(role)
        finally:
            gate.second_done.set()


class GatedReaderProvider(Provider):
    def __init__(self, gate: LockGate) -> None:
        super().__init__()
        self.gate = gate

    @provide(scope=Scope.REQUEST)
    def reader(self, connection: AsyncConnection) -> ConsoleReader:
        return GatedReader(SqlConsoleReader(connection), self.gate)  # type: ignore[return-value]


async def test_two_devs_demoting_each_other_leave_one_dev(
    pg_settings: Settings, postgres_url: str
) -> None:
    gate = LockGate(postgres_url)
    app = make_app(pg_settings, GatedReaderProvider(gate))
    async with serve(app) as client:
        ids = {
            name: await create_account(app, f"{name}@example.com", Role.DEV)
            for name in ("one", "two")
        }
        tokens = {
            name: (await login(client, f"{name}@example.com", scope="dev", otp="000000")).json()[
                "access_token"
            ]
            for name in ids
        }
        client.cookies.clear()

        def demote(operator: str, target: str) -> Any:
            return client.patch(
                f"/api/v1/admin/users/{ids[target]}",
                json={"role": "user"},
                headers=bearer(tokens[operator]),
            )

        first = asyncio.create_task(demote("one", "two"))
        await asyncio.wait_for(gate.first_counted.wait(), DEADLINE_SECONDS)
        second = asyncio.create_task(demote("two", "one"))
        await asyncio.wait_for(gate.second_entered.wait(), DEADLINE_SECONDS)
        deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
        while not gate.second_done.is_set() and not await gate.someone_waits_for_a_lock():
            assert asyncio.get_running_loop().time() < deadline, "the second caller never ran"
            await asyncio.sleep(0.01)  # polling for a state, with a deadline
        gate.go.set()
        won, lost = await first, await second
        assert won.status_code == 200, won.text
        assert_problem(lost, 409, "last_dev")
        devs = await fetch(pg_settings, "SELECT email FROM users WHERE role = 'dev' AND is_active")
        assert [row.email for row in devs] == ["one@example.com"]


async def test_concurrent_settings_merges_keep_every_key(pg_settings: Settings) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        auth = bearer((await register(client))["access_token"])
        client.cookies.clear()
        keys = ["email_alerts", "security_alerts", "product_updates", "weekly_digest"]
        for _ in range(3):
            for value in (True, False):
                answers = await asyncio.gather(
                    *(
                        client.patch(
                            "/api/v1/settings/notifications", json={key: value}, headers=auth
                        )
                        for key in keys
                    )
                )
                assert [a.status_code for a in answers] == [200] * len(keys)
                stored = (await client.get("/api/v1/settings", headers=auth)).json()
                # the other keys (the web client's) keep their defaults
                assert {k: stored["notifications"][k] for k in keys} == dict.fromkeys(keys, value)


async def test_parallel_wrong_codes_get_no_more_checks_than_the_budget(
    pg_settings: Settings,
) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        auth = bearer((await register(client))["access_token"])
        client.cookies.clear()
        totp = await enrol(client, auth)
        wrong = {wrong_code(totp, 100 + n) for n in range(16)}
        assert len(wrong) == 16
        answers = await asyncio.gather(*(disable(client, auth, code) for code in wrong))
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(400) <= 5, statuses
        assert set(statuses) == {400, 429}, [a.text for a in answers]
        for answer in answers:
            assert_problem(
                answer,
                answer.status_code,
                "invalid_otp" if answer.status_code == 400 else "too_many_attempts",
            )
        assert_problem(await disable(client, auth, next_code(totp)), 429, "too_many_attempts")
    enabled = await fetch(pg_settings, "SELECT otp_enabled FROM users")
    assert [row.otp_enabled for row in enabled] == [True]


async def test_a_logout_racing_a_password_change_never_ends_the_kept_session_for_nothing(
    pg_settings: Settings,
) -> None:
    """A thief's logout-everywhere with a token of a session the victim's password change
    ends: either the logout came first (204, every session ended) or the change did (401, the
    victim's session kept), never a refused logout that still ended something."""
    app = make_app(pg_settings)
    async with serve(app) as client:
        await register(client)
        stolen = (await login(client)).json()
        victim = (await login(client)).json()
        client.cookies.clear()
        change, out = await asyncio.gather(
            client.patch(
                "/api/v1/account/password",
                headers=bearer(victim["access_token"]),
                json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            ),
            client.post(
                "/api/v1/auth/logout",
                json={"refresh_token": stolen["refresh_token"], "everywhere": True},
            ),
        )
        assert change.status_code in {200, 401}, change.text
        me = await client.get("/api/v1/users/me", headers=bearer(victim["access_token"]))
        if out.status_code == 204:
            assert_problem(me, 401, "token_revoked")
        else:
            assert_problem(out, 401, "invalid_refresh_token")
            assert me.status_code == 200, me.text
        late = await client.post(
            "/api/v1/auth/logout",
            json={"refresh_token": stolen["refresh_token"], "everywhere": True},
        )
        assert_problem(late, 401, "invalid_refresh_token")


async def test_parallel_articles_with_one_title_all_get_a_slug(pg_settings: Settings) -> None:
    """A generated slug is checked, then inserted: a parallel request can take it in between.
    Nobody chose it, so the loser takes the next free suffix instead of answering 409."""
    app = make_app(pg_settings)
    async with serve(app) as client:
        admin = await sign_up_admin(client, pg_settings)
        title = "Parallel Slug Race"
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/resources",
                    json={
                        "title": title if n % 2 else title.upper(),
                        "type": "knowledge",
                        "body": "b",
                    },
                    headers=admin,
                )
                for n in range(10)
            )
        )
        assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers]
        slugs = {a.json()["slug"] for a in answers}
        assert slugs == {"parallel-slug-race", *(f"parallel-slug-race-{n}" for n in range(2, 11))}
        chosen = await client.post(
            "/api/v1/resources",
            json={"title": title, "slug": "parallel-slug-race-3", "type": "knowledge", "body": "b"},
            headers=admin,
        )
        assert_problem(chosen, 409, "slug_taken")


class OrderGate:
    """Pauses one placement ``before`` or ``after`` its read of when the address's orders were
    all cancelled, until released."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self) -> None:
        self.paused.set()
        await asyncio.wait_for(self.release.wait(), DEADLINE_SECONDS)


class GatedOrders(SqlOrderRepository):
    gates: ClassVar[list[OrderGate]] = []

    async def all_cancelled_at(self, email: str) -> datetime | None:
        gate = self.gates.pop(0) if self.gates else None
        if gate is not None and gate.where == "before":
            await gate.hold()
        found = await super().all_cancelled_at(email)
        if gate is not None and gate.where == "after":
            await gate.hold()
        return found


class GatedOrdersProvider(Provider):
    @provide(scope=Scope.REQUEST)
    def orders(self, connection: AsyncConnection) -> OrderRepository:
        return GatedOrders(connection)


async def test_two_orders_racing_a_cancellation_never_mail_a_dead_link(
    make_settings: SettingsFactory, postgres_url: str, smtp_server: SmtpServer
) -> None:
    """B's clock is read before an operator cancels the address's last order, and B reads the
    cancellation after it; A comes after the cancellation. Both would read "every order
    cancelled": B replaces the old link, and A, finding B's link issued (by B's clock) before
    the cancellation, replaced it again, so B's mail carried a dead link although B's order
    was pending. Placements for one address now take turns: A reads B's pending order."""
    await truncate_all(postgres_url)
    settings = make_settings(
        DATABASE_URL=postgres_url,
        INPROCESS_WORKER="false",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="none",
    )
    buyer = "ada@example.com"

    def cart(plan_type: str) -> dict[str, str]:
        return {"name": "Ada Lovelace", "email": buyer, "plan_type": plan_type}

    GatedOrders.gates.clear()
    app = make_app(settings, GatedOrdersProvider())
    async with serve(app) as client:
        await create_account(app, "admin@example.com", Role.ADMIN)
        admin = bearer((await login(client, "admin@example.com")).json()["access_token"])
        client.cookies.clear()
        first = await client.post("/api/v1/orders", json=cart("starter"))
        assert first.status_code == 201, first.text
        assert await deliver(app) == 1

        late, early = OrderGate("before"), OrderGate("after")
        GatedOrders.gates[:] = [late]
        b = asyncio.create_task(client.post("/api/v1/orders", json=cart("perimeter")))
        await asyncio.wait_for(late.paused.wait(), DEADLINE_SECONDS)
        order_id = first.json()["id"]
        cancel = {"status": "cancelled"}
        cancelled = await client.patch(
            f"/api/v1/admin/orders/{order_id}", json=cancel, headers=admin
        )
        assert cancelled.status_code == 200, cancelled.text
        GatedOrders.gates[:] = [early]
        a = asyncio.create_task(client.post("/api/v1/orders", json=cart("enterprise")))
        dsn = postgres_url.replace("+asyncpg", "")
        deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
        # A either reads at once (no turns: "every order cancelled", before B commits) or waits.
        while not early.paused.is_set() and not await someone_waits_for_a_lock(dsn):
            assert asyncio.get_running_loop().time() < deadline, "A neither read nor waited"
            await asyncio.sleep(0.01)  # polling for a state, with a deadline
        late.release.set()
        early.release.set()
        assert (await b).status_code == 201
        assert (await a).status_code == 201

        await deliver(app)
        _first_link, *new = [m for m in mail_to(smtp_server, buyer) if "signup" in text_of(m)]
        assert len(new) == 1, "the orders after the cancellation share one new link"
        opened = await client.get("/api/v1/orders", params={"token": token_in(new[0])})
        assert opened.status_code == 200, opened.text
        assert opened.json()["plan_type"] == "enterprise"  # the newest pending order it stands for
