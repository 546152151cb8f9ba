"""LogIn with fakes: unknown accounts cost a real verification; hashes upgrade on login."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from orbsurv.adapters.cache.memory import MemoryRateLimiter
from orbsurv.adapters.mail.composer import JinjaEmailComposer
from orbsurv.adapters.security.otp import TotpVerifier
from orbsurv.application.identity.credentials import LockoutNotice
from orbsurv.application.identity.login import LogIn, LoginCommand
from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.domain.audit import RequestContext
from orbsurv.domain.errors import RateLimited, Unauthenticated
from orbsurv.domain.identity import Role, User
from tests.fakes.identity import (
    CountingHasher,
    FakeClock,
    FakeUnitOfWork,
    FakeUserRepository,
    Recorder,
)
from tests.fakes.orders import FakeOutbox


@dataclass
class StubIssuer:
    opened: list[User]

    async def open(self, user: User, **_: Any) -> Any:
        self.opened.append(user)
        return SimpleNamespace(session=SimpleNamespace(id=f"session-of-{user.id}"))


CONTEXT = RequestContext(ip="198.51.100.7", user_agent="pytest", request_id="r1")


OUTBOXES: dict[int, FakeOutbox] = {}


async def build(
    hasher: CountingHasher, policy: IdentityPolicy | None = None
) -> tuple[LogIn, FakeUserRepository, StubIssuer, Recorder]:
    users, recorder, issuer, clock = FakeUserRepository(), Recorder(), StubIssuer([]), FakeClock()
    policy = policy or IdentityPolicy()
    limiter = MemoryRateLimiter()
    outbox = FakeOutbox()
    await users.add(
        User(
            id="u1",
            email="ada@example.com",
            password_hash=await CountingHasher().hash("correct horse"),
            role=Role.USER,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    use_case = LogIn(
        users,
        hasher,
        TotpVerifier(),
        limiter,
        issuer,  # type: ignore[arg-type]
        recorder,
        FakeUnitOfWork(),
        clock,
        policy,
        LockoutNotice(limiter, outbox, JinjaEmailComposer(), policy),
    )
    OUTBOXES[id(use_case)] = outbox
    return use_case, users, issuer, recorder


async def test_unknown_accounts_are_verified_against_the_dummy_hash() -> None:
    hasher = CountingHasher()
    login, _, _, recorder = await build(hasher)
    with pytest.raises(Unauthenticated) as unknown:
        await login(LoginCommand("nobody@example.com", "correct horse", CONTEXT))
    with pytest.raises(Unauthenticated) as wrong:
        await login(LoginCommand("ada@example.com", "wrong horse", CONTEXT))
    assert hasher.verified == [hasher.dummy_hash, "plain$correct horse"]  # one verification each
    assert unknown.value.code == wrong.value.code == "invalid_credentials"
    assert unknown.value.message == wrong.value.message
    assert len(recorder.events) == 2


async def test_a_login_upgrades_an_outdated_hash() -> None:
    hasher = CountingHasher(rehash=True)
    login, users, issuer, _ = await build(hasher)
    await login(LoginCommand(" ADA@example.com ", "correct horse", CONTEXT))
    stored = await users.get("u1")
    assert stored is not None
    assert stored.password_hash == "plain$v2$correct horse"
    assert stored.last_login_at is not None
    assert [u.id for u in issuer.opened] == ["u1"]


async def test_the_fifth_failure_locks_even_the_right_password() -> None:
    login, _, issuer, recorder = await build(CountingHasher())
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await login(LoginCommand("ada@example.com", "wrong horse", CONTEXT))
    with pytest.raises(RateLimited) as locked:
        await login(LoginCommand("ada@example.com", "correct horse", CONTEXT))
    assert locked.value.code == "too_many_attempts"
    assert 800 < locked.value.retry_after <= 900
    assert issuer.opened == []
    actions = [getattr(event, "action", None) for event in recorder.events]
    assert actions.count("login.locked_out") == 1  # the alert policy turns it into an alert


ATTACKER = RequestContext(ip="203.0.113.66", user_agent="guesser", request_id="r2")
OWNER_PHONE = RequestContext(ip="2001:db8:1:2::7", user_agent="phone", request_id="r3")


async def test_one_clients_failures_lock_only_that_client_out() -> None:
    """OWASP: lock-outs keyed on (account, client), so an attacker's failures do not lock the
    owner's other clients; the owner is mailed once per lock-out window."""
    login, _, issuer, recorder = await build(CountingHasher())
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await login(LoginCommand("ada@example.com", "wrong horse", ATTACKER))
    for _ in range(3):  # the attacker stays locked, even with the right password
        with pytest.raises(RateLimited) as locked:
            await login(LoginCommand("ada@example.com", "correct horse", ATTACKER))
        assert locked.value.code == "too_many_attempts"
        assert 800 < locked.value.retry_after <= 900
    await login(LoginCommand("ada@example.com", "correct horse", CONTEXT))
    await login(LoginCommand("ADA@example.com ", "correct horse", OWNER_PHONE))
    assert [u.id for u in issuer.opened] == ["u1", "u1"]
    lockouts = [e for e in recorder.events if getattr(e, "action", None) == "login.locked_out"]
    assert [e.metadata["scope"] for e in lockouts] == ["client"]
    [notice] = OUTBOXES[id(login)].messages
    assert notice.to == "ada@example.com"
    assert "paused for 15 minutes" in notice.text


async def test_unknown_identifiers_lock_per_client_too() -> None:
    login, _, _, _ = await build(CountingHasher())
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await login(LoginCommand("ghost@example.com", "wrong horse", ATTACKER))
    with pytest.raises(RateLimited):
        await login(LoginCommand("ghost@example.com", "wrong horse", ATTACKER))
    with pytest.raises(Unauthenticated):  # another client is not locked
        await login(LoginCommand("ghost@example.com", "wrong horse", CONTEXT))
    assert OUTBOXES[id(login)].messages == []  # no owner to tell


async def test_the_account_ceiling_bounds_guessing_from_many_clients() -> None:
    """Distributed guessing stays bounded: past ``account_ceiling_limit`` failures in the window
    every client is locked, and the lock-out is audited and mailed once."""
    policy = IdentityPolicy(account_ceiling_limit=12)
    login, _, issuer, recorder = await build(CountingHasher(), policy)
    for n in range(12):
        client = RequestContext(ip=f"198.51.100.{n // 4 + 10}")  # 4 guesses from each of 3
        with pytest.raises(Unauthenticated):
            await login(LoginCommand("ada@example.com", "wrong horse", client))
    with pytest.raises(RateLimited):
        await login(LoginCommand("ada@example.com", "correct horse", OWNER_PHONE))
    assert issuer.opened == []
    lockouts = [e for e in recorder.events if getattr(e, "action", None) == "login.locked_out"]
    assert [e.metadata["scope"] for e in lockouts] == ["account"]
    assert len(OUTBOXES[id(login)].messages) == 1
