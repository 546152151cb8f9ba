"""Package governance rules without I/O: the audit events of a publication, the refusal code of
a console write, and the publishing budget and version cap checked before any byte is stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.adapters.cache.memory import MemoryRateLimiter
from orbsurv.application.packages.ports import UploadDetails
from orbsurv.application.packages.uploads import UploadPolicy, check_publishing
from orbsurv.domain.audit import RequestContext
from orbsurv.domain.errors import RateLimited
from orbsurv.domain.identity import Permission, Principal, Role, Scope
from orbsurv.domain.packages import (
    PackageNameTaken,
    TooManyVersions,
    UploadResult,
    VersionExists,
    publication_events,
)

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RESULT = UploadResult(package_id="p1", version_id="v1", sha256="ab" * 32, size=3)


def events(created: bool, context: RequestContext | None) -> list[str]:
    found = publication_events(
        RESULT,
        owner_id="u1",
        package_name="orbit",
        version="1.0.0",
        is_public=False,
        protocol="tus",
        upload_id="up1",
        created_package=created,
        at=AT,
        context=context,
    )
    assert all(event.actor_user_id == "u1" and event.target_id == "p1" for event in found)
    return [f"{event.action}:{event.metadata['by']}:{event.context.ip}" for event in found]


def test_a_publication_records_the_package_it_made_and_the_version() -> None:
    request = RequestContext(ip="192.0.2.1", request_id="r1")
    assert events(True, request) == [
        "package.created:request:192.0.2.1",
        "package.version_published:request:192.0.2.1",
    ]
    assert events(False, request) == ["package.version_published:request:192.0.2.1"]
    assert events(False, None) == ["package.version_published:worker:None"]


@given(role=st.sampled_from(Role), scope=st.sampled_from(Scope))
def test_a_refused_console_write_names_what_would_allow_it(role: Role, scope: Scope) -> None:
    principal = Principal(user_id="u", role=role, scope=scope, session_id="s")
    code = principal.refusal_code(Permission.ADMINISTER)
    if role is Role.DEV and scope is Scope.USER:
        assert code == "dev_session_required"
    else:
        assert code == "forbidden"


class Catalog:
    def __init__(self, versions: dict[str, list[str]]) -> None:
        self.versions = versions

    async def version_exists(self, owner_id: str, package_name: str, version: str) -> bool:
        return version in self.versions.get(package_name, [])

    async def version_count(self, owner_id: str, package_name: str) -> int:
        return len(self.versions.get(package_name, []))

    async def spelling(self, owner_id: str, package_name: str) -> str | None:
        folded = {name.lower(): name for name in self.versions}
        return folded.get(package_name.lower())


def declared(name: str, version: str) -> UploadDetails:
    return UploadDetails(package_name=name, version=version, file_name="f")


async def test_publishing_is_counted_per_user_before_the_cap_and_the_duplicate() -> None:
    limiter = MemoryRateLimiter()
    catalog = Catalog({"full": ["1.0.0", "1.0.1"], "open": ["1.0.0"]})
    policy = UploadPolicy(max_versions=2, publishes_per_hour=3)
    with pytest.raises(TooManyVersions):
        await check_publishing(limiter, catalog, policy, "u1", declared("full", "2.0.0"))  # type: ignore[arg-type]
    with pytest.raises(VersionExists):
        await check_publishing(limiter, catalog, policy, "u1", declared("open", "1.0.0"))  # type: ignore[arg-type]
    await check_publishing(limiter, catalog, policy, "u1", declared("open", "2.0.0"))  # type: ignore[arg-type]
    with pytest.raises(RateLimited) as refused:
        await check_publishing(limiter, catalog, policy, "u1", declared("open", "3.0.0"))  # type: ignore[arg-type]
    assert refused.value.retry_after > 0
    await check_publishing(limiter, catalog, policy, "u2", declared("open", "3.0.0"))  # type: ignore[arg-type]
    with pytest.raises(PackageNameTaken):
        await check_publishing(limiter, catalog, policy, "u2", declared("Open", "4.0.0"))  # type: ignore[arg-type]
