"""SeedSuperuser: create-only. Never promotes or changes an existing account.

The seeded account counts as verified: the operator who configured ``SUPERUSER_EMAIL`` vouches for
the address, and the first admin must be able to sign in with ``AUTH_REQUIRE_VERIFIED_EMAIL=true``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
from orbsurv.domain.errors import Conflict
from orbsurv.domain.identity import Role

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SuperuserSeed:
    email: str
    password: str
    role: Role


class SeedSuperuser:
    def __init__(self, create: CreateUser) -> None:
        self._create = create

    async def __call__(self, seed: SuperuserSeed) -> bool:
        """``True`` when the account was created; ``False`` when one already existed."""
        try:
            user = await self._create(
                CreateUserCommand(
                    email=seed.email, password=seed.password, role=seed.role, email_verified=True
                )
            )
        except Conflict:
            logger.info("superuser %s already exists; left unchanged", seed.email)
            return False
        logger.info("superuser %s created with role %s", user.email, user.role.value)
        return True
