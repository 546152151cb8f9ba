"""LogIn with fakes: unknown accounts cost a real verification; hashes upgrade on login."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from orbsurv.adapters.cache.memory import MemoryRateLimiter
from orbsurv.adapters.security.otp import TotpVerifier
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


@dataclass
class StubIssuer:
    opened: list[User]

    async def open(self, user: User, **_: Any) -> Any:
        self.opened.append(user)
        return SimpleNamespace(session=SimpleNamespace(id=f"session-of-{user.id}"))


CONTEXT = RequestContext(ip="198.51.100.7", user_agent="pytest", request_id="r1")


async def build(hasher: CountingHasher) -> tuple[LogIn, FakeUserRepository, StubIssuer, Recorder]:
    users, recorder, issuer, clock = FakeUserRepository(), Recorder(), StubIssuer([]), FakeClock()
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
        MemoryRateLimiter(),
        issuer,  # type: ignore[arg-type]
        recorder,
        FakeUnitOfWork(),
        clock,
        IdentityPolicy(),  # type: ignore[arg-type]
    )
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
