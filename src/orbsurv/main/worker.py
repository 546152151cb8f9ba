"""``orbsurv worker``: runs background jobs until SIGTERM or SIGINT. Safe to run as replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from dishka import AsyncContainer
from redis.exceptions import RedisError

from orbsurv.adapters.persistence.database import database_unavailable
from orbsurv.application.account.mail_requests import ProcessMailRequests
from orbsurv.application.faults import root_cause
from orbsurv.application.files.projects import SweepObjects
from orbsurv.application.outbox import DeliverOutbox
from orbsurv.application.packages.uploads import PublishPendingUploads, SweepUploads
from orbsurv.domain.errors import DependencyUnavailable

logger = logging.getLogger("orbsurv.worker")


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of background work run every ``interval`` seconds; returns how many items it did."""

    name: str
    interval: float
    run: Callable[[AsyncContainer], Awaitable[int]]


async def deliver_outbox(container: AsyncContainer) -> int:
    async with container() as request:
        deliver = await request.get(DeliverOutbox)
        return await deliver()


async def process_mail_requests(container: AsyncContainer) -> int:
    async with container() as request:
        process = await request.get(ProcessMailRequests)
        return await process()


async def sweep_objects(container: AsyncContainer) -> int:
    """Remove objects crashed uploads and deletes left behind (see ``SweepObjects``)."""
    async with container() as request:
        sweep = await request.get(SweepObjects)
        return await sweep()


async def sweep_uploads(container: AsyncContainer) -> int:
    """Expired upload sessions: their multipart uploads, staged bytes and rows go."""
    sweep = await container.get(SweepUploads)
    return await sweep()


async def publish_uploads(container: AsyncContainer) -> int:
    """Uploads whose every byte is stored but whose publication failed: published again."""
    publish = await container.get(PublishPendingUploads)
    return await publish()


JOBS: Sequence[Job] = (
    Job(name="mail-requests", interval=1.0, run=process_mail_requests),
    Job(name="deliver-outbox", interval=1.0, run=deliver_outbox),
    Job(name="sweep-objects", interval=60.0, run=sweep_objects),
    Job(name="sweep-uploads", interval=60.0, run=sweep_uploads),
    Job(name="publish-uploads", interval=10.0, run=publish_uploads),
)


def dependency_fault(exc: Exception) -> bool:
    """Whether a job failed because a dependency did (the database, Redis, storage, the
    scanner, the mail server), not because of a bug of ours."""
    return isinstance(
        exc, DependencyUnavailable | RedisError | OSError | TimeoutError
    ) or database_unavailable(exc)


async def _loop(job: Job, container: AsyncContainer, stop: asyncio.Event) -> None:
    """Run ``job`` every ``interval`` seconds. While a dependency is down the job is retried
    on the same interval (so it heals within one interval of the dependency's return) and
    logged once when the outage starts and once when it ends, not every second; any other
    failure is a bug and is logged with its traceback every time."""
    failing_since: float | None = None
    while not stop.is_set():
        try:
            done = await job.run(container)
            if failing_since is not None:
                logger.info(
                    "job %s works again after %.0fs",
                    job.name,
                    time.monotonic() - failing_since,
                )
                failing_since = None
            if done:
                logger.info("job %s processed %d item(s)", job.name, done)
                continue  # there may be more: go again at once
        except Exception as exc:
            if not dependency_fault(exc):
                logger.exception("job %s failed; retrying in %.0fs", job.name, job.interval)
            elif failing_since is None:
                failing_since = time.monotonic()
                logger.warning(
                    "job %s: a dependency is unavailable%s; retrying every %.0fs",
                    job.name,
                    root_cause(exc) or f" ({type(exc).__name__})",
                    job.interval,
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=job.interval)


async def run_jobs(
    container: AsyncContainer, stop: asyncio.Event, jobs: Sequence[Job] = JOBS
) -> None:
    """Run every job on its interval until ``stop`` is set."""
    await asyncio.gather(*(_loop(job, container, stop) for job in jobs))


async def run_worker(container: AsyncContainer, jobs: Sequence[Job] = JOBS) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logger.info("worker started with %d job(s): %s", len(jobs), ", ".join(j.name for j in jobs))
    try:
        await run_jobs(container, stop, jobs)
    finally:
        await container.close()
        logger.info("worker stopped")
