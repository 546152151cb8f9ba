from __future__ import annotations

import asyncio

import pytest

from orbsurv.adapters.security.passwords import Argon2PasswordHasher
from orbsurv.domain.errors import DependencyUnavailable


@pytest.fixture(scope="module")
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher()


async def test_hash_and_verify(hasher: Argon2PasswordHasher) -> None:
    digest = await hasher.hash("correct horse battery staple")
    assert digest.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify(digest, "correct horse battery staple")
    assert not await hasher.verify(digest, "correct horse battery stapl")
    assert not hasher.needs_rehash(digest)


async def test_long_passwords_are_not_truncated(hasher: Argon2PasswordHasher) -> None:
    base = "x" * 100
    digest = await hasher.hash(base + "A")
    assert not await hasher.verify(digest, base + "B")


async def test_garbage_hashes_never_verify(hasher: Argon2PasswordHasher) -> None:
    assert not await hasher.verify("not-a-hash", "anything")
    assert hasher.needs_rehash("not-a-hash")


async def test_parameter_changes_ask_for_a_rehash(hasher: Argon2PasswordHasher) -> None:
    weaker = Argon2PasswordHasher(memory_cost=8 * 1024, time_cost=1)
    digest = await weaker.hash("correct horse battery staple")
    assert await hasher.verify(digest, "correct horse battery staple")
    assert hasher.needs_rehash(digest)
    weaker.close()


async def test_a_saturated_pool_fails_fast() -> None:
    small = Argon2PasswordHasher(threads=1, max_pending=2)
    try:
        results = await asyncio.gather(
            *(small.hash(f"password-{i}") for i in range(4)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, DependencyUnavailable)]
        assert len(refused) == 2
        assert all(isinstance(r, str) for r in results if r not in refused)
    finally:
        small.close()
