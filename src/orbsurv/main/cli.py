"""The ``orbsurv`` command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from orbsurv.domain.errors import DomainError
from orbsurv.domain.identity import Role
from orbsurv.main.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"orbsurv: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _migrate(settings: Settings) -> None:
    from orbsurv.adapters.persistence.migrations import upgrade

    upgrade(settings.database_url)


def cmd_serve(args: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    settings = _settings()
    if settings.env != "production":
        _migrate(settings)  # development and test keep their database current at start
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
    ).serve()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    _migrate(settings)
    print(f"database at {settings.database_backend}: migrated to the latest revision")
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
                    )
                )
                return user.id, user.email
        finally:
            await container.close()

    try:
        user_id, email = asyncio.run(create())
    except DomainError as exc:
        field = getattr(exc, "field", None)
        print(f"orbsurv: {field + ' ' if field else ''}{exc.message}", file=sys.stderr)
        return 1
    print(f"created {args.role} {email} ({user_id})")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from orbsurv.main.app import make_app

    settings = load_settings({**os.environ, "LOG_LEVEL": "WARNING"})
    app = make_app(settings)
    print(json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=False))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from orbsurv.adapters.mail.smtp import MailProbe
    from orbsurv.application.system.readiness import CheckReadiness
    from orbsurv.main.app import build_container

    settings = _settings()
    print(
        f"configuration: ok (ENV={settings.env}, database={settings.database_backend}, "
        f"cache={'redis' if settings.redis_url else 'memory'}, storage={settings.storage_backend}, "
        f"mail={'smtp' if settings.smtp_host else 'console'})"
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
    configure_logging(settings.log_level, settings.effective_log_format)
    asyncio.run(run_worker(build_container(settings)))
    return 0


def cmd_mail_list(args: argparse.Namespace) -> int:
    from orbsurv.adapters.persistence.outbox import SqlOutbox
    from orbsurv.main.app import build_container

    settings = _settings()

    async def recent() -> list[Any]:
        container = build_container(settings)
        try:
            async with container() as request:
                return await (await request.get(SqlOutbox)).recent(args.limit)
        finally:
            await container.close()

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
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--reload", action="store_true", help="restart on source changes (development)"
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser(
        "migrate", help="upgrade the database schema to the latest revision"
    )
    migrate.set_defaults(func=cmd_migrate)

    create = commands.add_parser(
        "create-user", help="create an account (the password may come from stdin)"
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

    mail = commands.add_parser("mail", help="read the mail outbox")
    mail_commands = mail.add_subparsers(dest="mail_command", required=True, metavar="ACTION")
    mail_list = mail_commands.add_parser("list", help="print the newest messages, oldest first")
    mail_list.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    mail_list.set_defaults(func=cmd_mail_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
