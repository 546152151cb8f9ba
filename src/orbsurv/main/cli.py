"""The ``orbsurv`` command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orbsurv.domain.errors import DomainError
from orbsurv.domain.identity import Role
from orbsurv.main.metrics import MetricsListener
from orbsurv.main.settings import (
    DEFAULT_BACKEND_URL,
    Settings,
    SettingsError,
    check_worker_count,
    load_settings,
)


class _OneLineFormatter(logging.Formatter):
    """A command's log lines without tracebacks: the message already names the problem."""

    def formatException(self, ei: Any) -> str:
        return ""


class CommandFailed(Exception):
    """A problem the operator can fix: printed as one line naming the problem and the fix."""


def _settings(overrides: dict[str, str] | None = None, *, workers: int = 1) -> Settings:
    """The validated settings for a command that runs ``workers`` processes; exits 2 if unusable."""
    try:
        settings = load_settings({**os.environ, **overrides} if overrides else None)
        check_worker_count(settings, workers)
    except SettingsError as exc:
        print(f"orbsurv: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings


def _worker_count(text: str) -> int:
    """``--workers``: a whole number of processes, at least 1 (argparse exits 2 otherwise and
    names the option)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {count}")
    return count


def _shown_url(url: str) -> str:
    """The database URL without its password, for messages and start-up lines."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _database_errors(settings: Settings) -> Iterator[None]:
    """Turn a database failure into one line that names the problem and the fix."""
    from sqlalchemy.exc import SQLAlchemyError

    from orbsurv.application.faults import describe
    from orbsurv.domain.errors import DependencyUnavailable

    try:
        yield
    except DependencyUnavailable as exc:  # refused, reset or silent: the engine said which
        raise CommandFailed(
            f"cannot use the database at {_shown_url(settings.database_url)}: {exc.message} "
            f"({describe(exc)}); check DATABASE_URL and that the server is running"
        ) from None
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
            raise CommandFailed(
                f"the database at {_shown_url(settings.database_url)} has no schema yet "
                f"({reason}); run `orbsurv migrate` first"
            ) from None
        raise CommandFailed(
            f"cannot use the database at {_shown_url(settings.database_url)}: "
            f"{type(exc).__name__}: {reason or 'no answer'}; check DATABASE_URL and that the "
            "server is running"
        ) from None


async def _revisions(database_url: str) -> frozenset[str]:
    from orbsurv.adapters.persistence.database import make_engine
    from orbsurv.adapters.persistence.migrations import current_revisions

    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(current_revisions)
    finally:
        await engine.dispose()


def _require_schema(settings: Settings) -> None:
    """Refuse to run a command on a database that is behind the code."""
    from orbsurv.adapters.persistence.migrations import schema_revisions

    with _database_errors(settings):
        current = asyncio.run(_revisions(settings.database_url))
    gap = schema_revisions().gap(current)
    if gap is not None:
        raise CommandFailed(
            f"the database at {_shown_url(settings.database_url)} is {gap}; "
            "run `orbsurv migrate` first"
        )


def _migrate(settings: Settings) -> str:
    """Upgrade to the head revision; says what changed."""
    from orbsurv.adapters.persistence.migrations import schema_revisions, upgrade

    with _database_errors(settings):
        before = asyncio.run(_revisions(settings.database_url))
        upgrade(settings.database_url)
    heads = ", ".join(sorted(schema_revisions().heads))
    where = f"database {_shown_url(settings.database_url)}"
    if before == schema_revisions().heads:
        return f"{where}: already at revision {heads}, nothing to migrate"
    if not before:
        return f"{where}: created the schema at revision {heads}"
    return f"{where}: upgraded from revision {', '.join(sorted(before))} to {heads}"


def _metrics_directory(workers: int, *, shared: bool = False) -> str | None:
    """One Prometheus directory shared by every worker process, emptied at start.

    prometheus_client aggregates across processes only through ``PROMETHEUS_MULTIPROC_DIR``; with
    several workers and no directory, ``/metrics`` would show whichever worker answered.
    ``shared``: made even for one worker, for the ``METRICS_PORT`` listener in this process.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        if workers <= 1 and not shared:
            return None
        directory = tempfile.mkdtemp(prefix="orbsurv-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # counters of a previous run would be added to this one's
        stale.unlink()
    return directory


def _served_url(host: str, port: int) -> str:
    """``http://host:port`` of a bound address; a wildcard address is reached on loopback."""
    if host in {"", "0.0.0.0"}:
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# After SIGINT or SIGTERM, a worker still running this many seconds later is killed. A worker
# signalled during its start-up never stops on its own: granian 2.8 deadlocks in its signal
# handler while the ASGI lifespan starts (Ctrl-C from a terminal while the second of two workers
# starts), and without this limit `serve` waited for it for ever.
WORKER_STOP_SECONDS = 10


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(workers=args.workers)  # before anything starts or migrates
    if settings.env != "production":
        # Development and test keep their database current at start.
        print(f"orbsurv: {_migrate(settings)}")
        if settings.backend_url == DEFAULT_BACKEND_URL:
            # Links in mail open this server, on whatever port it was asked to bind; the worker
            # processes read the settings from this environment.
            os.environ["BACKEND_URL"] = _served_url(args.host, args.port)
    chosen_metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics = _metrics_directory(args.workers, shared=settings.metrics_port is not None)
    storage = (
        f"s3 bucket {settings.s3_bucket}"
        if settings.storage_backend == "s3"
        else f"local files under {Path(settings.upload_root).resolve()}"
    )
    mail = (
        f"smtp {settings.smtp_host}:{settings.smtp_port}"
        if settings.uses_smtp
        else "console (`orbsurv mail list` shows the messages)"
    )
    print(
        f"orbsurv: starting {args.workers} worker(s) on http://{args.host}:{args.port}, "
        f"ENV={settings.env}; it answers once they are up (docs at /api/v1/docs)\n"
        f"orbsurv: database {_shown_url(settings.database_url)}; storage {storage}; mail {mail}; "
        f"cache {'redis' if settings.redis_url else 'in-memory'}"
        + (f"; metrics aggregated in {metrics}" if metrics else ""),
        flush=True,
    )
    listener = _metrics_listener(settings, metrics)
    try:
        _serve(args)
    finally:
        if listener is not None:
            listener.stop()
        if metrics and not chosen_metrics:  # ours: a fresh directory made for this run
            shutil.rmtree(metrics, ignore_errors=True)
    return 0


def _metrics_listener(settings: Settings, directory: str | None) -> MetricsListener | None:
    """With ``METRICS_PORT``: every worker's metrics (aggregated from ``directory``) on a
    listener of this process at ``METRICS_HOST:METRICS_PORT``, the API's /metrics being 404.
    Without it in production and without ``METRICS_TOKEN``: says that /metrics is off."""
    if settings.metrics_port is None:
        if settings.is_production and settings.metrics_token is None:
            print(
                "orbsurv: /metrics is off (404): set METRICS_TOKEN (scrape with a Bearer "
                "token) or METRICS_PORT (a listener of its own) to serve it",
                flush=True,
            )
        return None
    assert directory is not None  # made by _metrics_directory(shared=True)
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    def render() -> bytes:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    try:
        listener = MetricsListener(
            settings.metrics_host, settings.metrics_port, render, settings.metrics_token
        )
    except OSError as exc:
        raise CommandFailed(
            f"METRICS_PORT: cannot listen on {settings.metrics_host}:{settings.metrics_port} "
            f"({exc.strerror or exc})"
        ) from None
    listener.start()
    print(
        f"orbsurv: metrics on http://{settings.metrics_host}:{listener.port}/metrics"
        + (" (Bearer METRICS_TOKEN)" if settings.metrics_token else ""),
        flush=True,
    )
    return listener


def _serve(args: argparse.Namespace) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "orbsurv.main.asgi:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        log_enabled=False,
        respawn_failed_workers=True,
        workers_kill_timeout=WORKER_STOP_SECONDS,
    ).serve()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    print(_migrate(settings))
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password not in (None, "-"):
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def cmd_create_user(args: argparse.Namespace) -> int:
    from orbsurv.adapters.validation import checked_email
    from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
    from orbsurv.main.app import build_container

    settings = _settings()
    _require_schema(settings)
    password = _read_password(args)

    async def create() -> tuple[str, str]:
        container = build_container(settings)
        try:
            async with container() as request:
                use_case = await request.get(CreateUser)
                user = await use_case(
                    CreateUserCommand(
                        email=checked_email(
                            args.email, allow_special_use=settings.allows_special_use_email
                        ),
                        password=password,
                        role=Role(args.role),
                        name=args.name,
                        email_verified=True,  # the operator vouches for the address
                    )
                )
                return user.id, user.email
        finally:
            await container.close()

    try:
        with _database_errors(settings):
            user_id, email = asyncio.run(create())
    except DomainError as exc:
        field = getattr(exc, "field", None)
        print(f"orbsurv: {field + ' ' if field else ''}{exc.message}", file=sys.stderr)
        return 1
    print(f"created {args.role} {email} ({user_id})")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from orbsurv.main.app import make_app

    settings = _settings({"LOG_LEVEL": "WARNING"})
    app = make_app(settings)
    print(json.dumps(json.loads(app.state.openapi_document), indent=2, sort_keys=False))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from orbsurv.adapters.mail.smtp import MailProbe
    from orbsurv.application.system.readiness import CheckReadiness
    from orbsurv.main.app import build_container

    settings = _settings()
    print(
        f"configuration: ok (ENV={settings.env}, database={settings.database_backend}, "
        f"cache={'redis' if settings.redis_url else 'memory'}, storage={settings.storage_backend}, "
        f"mail={'smtp' if settings.uses_smtp else 'console'})"
    )

    async def check() -> bool:
        container = build_container(settings)
        try:
            readiness = await container.get(CheckReadiness)
            mail = await container.get(MailProbe)
            report = await readiness.including(mail)()
        finally:
            await container.close()
        for name, state in report.checks.items():
            print(f"{name}: {state}")
        return report.ready

    return 0 if asyncio.run(check()) else 1


def cmd_worker(args: argparse.Namespace) -> int:
    from orbsurv.main.app import build_container
    from orbsurv.main.logs import configure_logging
    from orbsurv.main.worker import run_worker

    settings = _settings()
    configure_logging(settings)
    asyncio.run(run_worker(build_container(settings)))
    return 0


def cmd_mail_list(args: argparse.Namespace) -> int:
    from orbsurv.adapters.persistence.outbox import SqlOutbox
    from orbsurv.main.app import build_container

    settings = _settings()
    _require_schema(settings)

    async def recent() -> list[Any]:
        container = build_container(settings)
        try:
            async with container() as request:
                return await (await request.get(SqlOutbox)).recent(args.limit)
        finally:
            await container.close()

    with _database_errors(settings):
        rows = asyncio.run(recent())
    if not rows:
        print("the outbox is empty")
    for row in reversed(rows):
        print(f"--- {row.created_at:%Y-%m-%d %H:%M:%S} [{row.status}] to {row.recipient}")
        print(f"Subject: {row.subject}")
        print(row.text_body.rstrip())
        if row.last_error:
            print(f"(last error after {row.attempts} attempt(s): {row.last_error})")
    return 0


def cmd_secret(args: argparse.Namespace) -> int:
    """A fresh random secret for JWT_SECRET_KEY and the other keys (URL-safe base64)."""
    import secrets

    print(secrets.token_urlsafe(args.bytes))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orbsurv",
        description="Orbsurv backend. Configuration comes from the environment and ./.env.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the HTTP API (migrates the database first outside production)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--workers", type=_worker_count, default=1, help="worker processes (default 1)"
    )
    serve.add_argument(
        "--reload", action="store_true", help="restart on source changes (development)"
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser(
        "migrate", help="upgrade the database schema to the latest revision"
    )
    migrate.set_defaults(func=cmd_migrate)

    create = commands.add_parser(
        "create-user",
        help="create an account (the password may come from stdin)",
        description=(
            "Create an account. An account made here counts as verified: the operator vouches "
            "for the address, so it can sign in even with AUTH_REQUIRE_VERIFIED_EMAIL=true "
            "(the same holds for the SUPERUSER_* seed)."
        ),
    )
    create.add_argument("--email", required=True, help="the account's email address")
    create.add_argument(
        "--password", help="the password; omit it or pass '-' to read it from stdin"
    )
    create.add_argument(
        "--role", choices=[r.value for r in Role], default="user", help="default: user"
    )
    create.add_argument("--name", help="display name")
    create.set_defaults(func=cmd_create_user)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document as JSON")
    openapi.set_defaults(func=cmd_openapi)

    check = commands.add_parser(
        "check", help="validate the configuration and reach every configured dependency"
    )
    check.set_defaults(func=cmd_check)

    worker = commands.add_parser("worker", help="run background jobs (mail delivery) until stopped")
    worker.set_defaults(func=cmd_worker)

    secret = commands.add_parser(
        "secret", help="print a fresh random secret (for JWT_SECRET_KEY and the other keys)"
    )
    secret.add_argument(
        "--bytes",
        type=int,
        default=48,
        choices=range(32, 257),
        metavar="N",
        help="random bytes, 32..256 (default 48: 64 characters)",
    )
    secret.set_defaults(func=cmd_secret)

    mail = commands.add_parser("mail", help="read the mail outbox")
    mail_commands = mail.add_subparsers(dest="mail_command", required=True, metavar="ACTION")
    mail_list = mail_commands.add_parser("list", help="print the newest messages, oldest first")
    mail_list.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    mail_list.set_defaults(func=cmd_mail_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in {"serve", "worker"}:  # those configure logging from the settings
        handler = logging.StreamHandler()
        handler.setFormatter(_OneLineFormatter("orbsurv: %(message)s"))
        logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        result: int = args.func(args)
    except CommandFailed as exc:
        print(f"orbsurv: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`orbsurv openapi | head`): say nothing more, and keep the
        # interpreter from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command its pipe reader left
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
