"""Logging: one line per event, JSON in production, and the request id on every line.

No log line may carry a password, a hash, a token, a TOTP secret or a key (OWASP ASVS 7.1.1). The
values a statement was bound with are the risk: SQLAlchemy prints them into its exception text
unless the engine hides them (every engine does: ``hide_parameters=True``), and the database
driver's own message can quote them too (PostgreSQL's ``DETAIL: Failing row contains (...)``,
``Key (email)=(...)``). So every log record is screened where it is made: an exception from the
database layer anywhere in the chain (``__cause__``/``__context__``) is rendered with its type,
SQLSTATE and the schema names involved (constraint, table, column), never its message; a
database exception passed as a ``%s`` argument is replaced the same way.
With ``LOG_FILE_PATH`` the same lines also go to that file, rotated by size
(``LOG_FILE_MAX_BYTES``, keeping ``LOG_FILE_BACKUPS`` older files). Several worker processes
writing one rotated file can lose lines at a rotation; give each host (or container) its own file,
or collect stdout instead.

The HTTP client's own loggers (``httpx``, ``httpcore``) are held at WARNING: httpx logs every
request's full URL at INFO, user information (``https://user:key@host/v1`` in ``AI_BASE_URL``)
included, and httpcore's DEBUG trace adds nothing an operator needs.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from orbsurv.adapters.http.context import REQUEST_ID

if TYPE_CHECKING:
    from orbsurv.main.settings import Settings

#: Loggers that write request URLs (credentials included) below WARNING; see the module docstring.
QUIET_LOGGERS = ("httpx", "httpcore")
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}
_DATABASE_PACKAGES = frozenset({"sqlalchemy", "asyncpg", "sqlite3", "aiosqlite", "alembic"})
_SCHEMA_NAMES = ("sqlstate", "constraint_name", "table_name", "column_name", "sqlite_errorname")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _from_database(exc: BaseException) -> bool:
    return type(exc).__module__.partition(".")[0] in _DATABASE_PACKAGES


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, oldest first (the order tracebacks print)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return seen[::-1]


def database_error_summary(exc: BaseException) -> str:
    """A database error without its message: type, SQLSTATE and schema names only."""
    origin = getattr(exc, "orig", None) or exc
    names = [
        f"{name}={value}"
        for source in (origin, getattr(origin, "__cause__", None))
        for name in _SCHEMA_NAMES
        if source is not None and isinstance(value := getattr(source, name, None), str) and value
    ]
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if origin is not exc:
        names.insert(0, f"driver={type(origin).__qualname__}")
    detail = ", ".join(dict.fromkeys(names)) or "details withheld"
    return f"{kind}: database error ({detail}; message withheld, it may quote values)"


def redacted_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and its causes, database messages replaced by summaries."""
    parts: list[str] = []
    for position, item in enumerate(_chain(exc)):
        if position:
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if item.__cause__ is not None
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if item.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(item.__traceback__))
        if _from_database(item):
            parts.append(database_error_summary(item) + "\n")
        else:
            parts.extend(traceback.format_exception_only(type(item), item))
    return "".join(parts).rstrip("\n")


def _needs_redaction(exc: BaseException) -> bool:
    return any(_from_database(item) for item in _chain(exc))


def _redact(record: logging.LogRecord) -> logging.LogRecord:
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None and _needs_redaction(exc_info[1]):
        record.exc_text = redacted_traceback(exc_info[1])
        record.exc_info = None
    if isinstance(record.args, tuple) and any(
        isinstance(arg, BaseException) and _needs_redaction(arg) for arg in record.args
    ):
        record.args = tuple(
            database_error_summary(arg)
            if isinstance(arg, BaseException) and _needs_redaction(arg)
            else arg
            for arg in record.args
        )
    return record


def install_redaction() -> None:
    """Screen every log record the process makes (idempotent; wraps the current factory)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "orbsurv_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _redact(current(*args, **kwargs))

    factory.orbsurv_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


def configure_logging(settings: Settings) -> None:
    """Route every logger (ours, Litestar's, the server's) through stderr and the log file.

    Nothing below ``LOG_LEVEL`` is written, whatever level a library gave its own logger.

    Every record is screened for database error text first (``install_redaction``), and the
    ``QUIET_LOGGERS`` write nothing below WARNING, whatever ``LOG_LEVEL`` says, since their
    request lines carry URLs with credentials (OWASP ASVS 7.1.1).
    Raises ``OSError`` when ``LOG_FILE_PATH`` cannot be opened for appending.
    """
    install_redaction()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_file_path:
        path = Path(settings.log_file_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                path,
                maxBytes=settings.log_file_max_bytes,
                backupCount=settings.log_file_backups,
                encoding="utf-8",
            )
        )
    formatter: logging.Formatter = (
        JsonFormatter() if settings.effective_log_format == "json" else TextFormatter()
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
        existing.close()
    for handler in handlers:
        # The level sits on the handlers too: a library that sets its own logger's level (bm25s
        # sets DEBUG on import) would otherwise pass records below LOG_LEVEL up to them.
        handler.setLevel(settings.log_level)
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
