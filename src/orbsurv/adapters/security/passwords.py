"""Argon2id password hashing in a bounded thread pool, so the event loop never blocks on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from orbsurv.domain.errors import DependencyUnavailable

# OWASP recommendation for argon2id: m=19 MiB, t=2, p=1.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1


HASHING_NICENESS = 10


def _yield_to_the_loop() -> None:
    """Hashing threads run at a lower priority than the event loop's thread: while both want the
    core, the loop (answering requests) goes first; hashing still takes every idle cycle."""
    with contextlib.suppress(OSError, AttributeError):  # per-thread nice is Linux behaviour
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


class Argon2PasswordHasher:
    def __init__(
        self,
        *,
        threads: int | None = None,
        max_pending: int = 64,
        memory_cost: int = OWASP_MEMORY_KIB,
        time_cost: int = OWASP_TIME_COST,
        parallelism: int = OWASP_PARALLELISM,
    ) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # One hashing thread per core this process may run on: argon2 is CPU-bound.
        self._threads = threads or max(1, len(os.sched_getaffinity(0)))
        self._pool = ThreadPoolExecutor(
            max_workers=self._threads, thread_name_prefix="argon2", initializer=_yield_to_the_loop
        )
        self._max_pending = max_pending
        self._pending = 0
        # Verified when an account does not exist, so unknown accounts cost the same time.
        self._dummy_hash = self._argon2.hash("no account has this password")

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def dummy_hash(self) -> str:
        return self._dummy_hash

    async def _run(self, fn: object, *args: str) -> object:
        if self._pending >= self._max_pending:
            raise DependencyUnavailable(
                "The service is busy verifying passwords; try again in a moment.",
                code="hasher_saturated",
            )
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        result = await self._run(self._argon2.hash, password)
        assert isinstance(result, str)
        return result

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str, password: str) -> bool:
        return bool(await self._run(self._verify, password_hash, password))

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
