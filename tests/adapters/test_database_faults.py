"""The PostgreSQL engine's bounds and how its failures are classified (503 or our bug)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orbsurv.adapters.persistence.database import database_unavailable, make_engine
from orbsurv.application.errors import DatabaseUnavailable
from tests.fault_proxy import black_hole
from tests.services import POSTGRES_PORT


async def test_a_statement_over_the_timeout_is_classified(postgres_url: str) -> None:
    """The server cancels it (57014), which the edge maps to 503; a driver-side timeout (the
    server said nothing) is ``DatabaseUnavailable`` and discards the connection."""
    engine = make_engine(postgres_url, statement_timeout=0.3)
    try:
        with pytest.raises(sa.exc.DBAPIError) as cancelled:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT pg_sleep(2)"))
        assert database_unavailable(cancelled.value)
        with pytest.raises(sa.exc.DBAPIError) as broken:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1/0"))
        assert not database_unavailable(broken.value)  # our bug: stays a 500
    finally:
        await engine.dispose()
    hole = black_hole()
    engine = make_engine(
        postgres_url.replace(f":{POSTGRES_PORT}/", f":{hole.port}/"), connect_timeout=0.5
    )
    try:
        with pytest.raises(DatabaseUnavailable):
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()
        hole.close()
