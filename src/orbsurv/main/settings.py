"""Settings: read from the environment and an optional ``.env``, typed and validated at start-up.

Every variable of the contract's Configuration section lives here. A bad value stops the process
with a message that names the variable. Secrets:

* ``ENV=production`` refuses a missing, short (<32), placeholder, reused or guessable secret, and
  refuses to start while ``DEV_MASTER_OTP`` is set. Guessable means low in entropy: mostly one
  short pattern repeated (``aaaa…``, a word over and over), fewer than ``MIN_SECRET_SYMBOLS``
  distinct characters, or under ``MIN_SECRET_BITS_PER_CHAR`` bits of Shannon entropy per
  character (a random hex string has about 3.6 to 4, ``secrets.token_urlsafe`` about 5 to 6).
  HS256 keys need at least 256 bits of real randomness (RFC 7518 section 3.2): ``orbsurv secret``
  prints one;
* ``ENV=development`` (the default) generates missing secrets once into ``VAR_DIR/secrets.json``
  and reuses them, so restarts keep sessions;
* ``ENV=test`` generates missing secrets in memory.

Production also refuses to run half-configured: ``BACKEND_URL`` (the origin put into every mail
link) must be set explicitly, and mail needs ``SMTP_HOST`` unless ``MAIL_BACKEND=console`` says
that leaving mail undelivered is what the operator wants: the console mailer logs only each
message's recipient and subject, and the message stays in the outbox, where ``orbsurv mail list``
prints it with its single-use links.

In every environment, ``orbsurv serve`` refuses more than one worker process without
``REDIS_URL`` (``check_worker_count``): revocations, rate limits and locks must be shared.

``VAR_DIR`` is where development keeps everything it generates: the SQLite database
(``VAR_DIR/orbsurv.db``), uploads (``VAR_DIR/uploads``) and secrets (``VAR_DIR/secrets.json``),
unless ``DATABASE_URL`` or ``UPLOAD_ROOT`` say otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import secrets
import typing
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from dotenv import dotenv_values

from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.identity import check_password_policy
from orbsurv.domain.orders import DEFAULT_PLANS, PlanCatalogue

Environment = Literal["development", "production", "test"]
SECRET_NAMES = ("JWT_SECRET_KEY", "EMAIL_VERIFY_SECRET", "PASSWORD_RESET_SECRET")
MIN_SECRET_LENGTH = 32
MIN_SECRET_SYMBOLS = 8
MIN_SECRET_BITS_PER_CHAR = 2.75
GENERATE_ADVICE = (
    "generate one with `orbsurv secret` "
    "(or: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
)
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "secret-key",
        "secret_key",
        "your-secret-key",
        "your_secret_key",
        "supersecret",
        "please-change-me",
        "replace-me",
        "development",
        "insecure",
    }
)
_PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "replace", "placeholder", "example")
ALIASES = {"SECRET_KEY": "JWT_SECRET_KEY", "FRONTEND_URL": "CORS_ALLOW_ORIGINS"}
LIST_VARIABLES = (
    "CORS_ALLOW_ORIGINS",
    "TRUSTED_PROXIES",
    "ALERT_EMAILS",
    "ALLOWED_PROJECT_EXTENSIONS",
    "MALWARE_SHA256_DENYLIST",
)
GiB = 1024**3
SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
#: The drivers the service ships with: ``scheme://`` of DATABASE_URL -> an example.
DATABASE_SCHEMES = {
    "sqlite+aiosqlite": "sqlite+aiosqlite:///./var/orbsurv.db",
    "postgresql+asyncpg": "postgresql+asyncpg://user:password@host:5432/dbname",
}


# Where development mail links point when BACKEND_URL is unset; `orbsurv serve` replaces it with
# the address it binds.
DEFAULT_BACKEND_URL = "http://127.0.0.1:8000"


class SettingsError(ValueError):
    """The configuration is unusable; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    env: Environment = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] | None = None
    log_file_path: str | None = None
    log_file_max_bytes: PositiveInt = 10 * 1024 * 1024
    log_file_backups: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5
    var_dir: str = "./var"
    inprocess_worker: bool | None = None  # None: on in development, off elsewhere

    database_url: str = "sqlite+aiosqlite:///./var/orbsurv.db"
    # PostgreSQL bounds (seconds, connections): see docs/configuration.md and "Time bounds" in
    # docs/operations.md. SQLite keeps its own busy timeout (15 s) and ignores these.
    db_connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    db_statement_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 15.0
    db_pool_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 3.0
    db_pool_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    redis_url: str | None = None
    redis_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0

    jwt_secret_key: str = ""
    email_verify_secret: str = ""
    password_reset_secret: str = ""
    access_token_expire_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 15
    refresh_token_expire_minutes: PositiveInt = 30 * 24 * 60
    refresh_reuse_grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=300)] = 10
    # No refresh extends a session past this many hours after its sign-in (OWASP Session
    # Management Cheat Sheet, "Absolute Timeout"); a refresh after it is 401 ``session_expired``.
    session_absolute_lifetime_hours: PositiveInt = 720
    # A dev-scope session ends this many hours after its sign-in with the second factor: its
    # refresh then answers 401 ``session_expired`` and the dev signs in with the factor again.
    dev_session_reauth_hours: PositiveInt = 12
    # How often each worker reads the newest revocations from the database (seconds): the bound
    # for a revocation whose Redis message never reached a worker.
    revocation_poll_seconds: Annotated[float, msgspec.Meta(ge=0.5, le=300)] = 5.0
    auth_require_verified_email: bool = False
    dev_master_otp: str | None = None
    trusted_proxies: tuple[str, ...] = ()

    cors_allow_origins: tuple[str, ...] = ()
    backend_url: str = DEFAULT_BACKEND_URL
    command_center_url: str = "/admin"
    max_json_body_bytes: PositiveInt = 1024 * 1024

    # Anonymous writes, per client IP (as TRUSTED_PROXIES resolves it): requests per window
    # (seconds); over the budget, 429 `rate_limited` with Retry-After. See "Abuse limits" in
    # docs/operations.md for the worst-case growth each one allows.
    analytics_rate_limit: PositiveInt = 30  # POST /analytics/events requests ...
    analytics_rate_window_seconds: PositiveInt = 60  # ... per minute
    analytics_max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 64 * 1024
    # requests to /auth/register, /users and /auth/register-from-order together ...
    registration_rate_limit: PositiveInt = 10
    registration_rate_window_seconds: PositiveInt = 3600  # ... per hour
    form_rate_limit: PositiveInt = 10  # each public form and POST /orders ...
    form_rate_window_seconds: PositiveInt = 600  # ... per 10 minutes
    client_error_rate_limit: PositiveInt = 30  # POST /client_errors ...
    client_error_rate_window_seconds: PositiveInt = 60  # ... per minute
    # Refused console requests (403): the first DENIAL_AUDIT_LIMIT per minute of one account or
    # one client IP are audited as rows; beyond that, one `access.denied.suppressed` row each
    # time the count doubles (2x, 4x, 8x ... the limit), so a flood costs a few rows, not one each.
    denial_audit_limit: Annotated[int, msgspec.Meta(ge=10, le=10_000)] = 20

    # GET /metrics: with METRICS_TOKEN it needs `Authorization: Bearer <token>`; with
    # METRICS_PORT it is served only by `orbsurv serve` on METRICS_HOST:METRICS_PORT, not by the
    # API. In production with neither, /metrics is 404 (docs/operations.md, "Metrics").
    metrics_token: str | None = None
    metrics_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"

    storage_backend: Literal["local", "s3"] = "local"
    upload_root: str = "./var/uploads"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    s3_connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 3.0
    s3_read_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    s3_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 2

    mail_backend: Literal["smtp", "console"] | None = None  # None: smtp when SMTP_HOST is set
    max_upload_bytes: PositiveInt = 5 * GiB
    user_quota_bytes: Annotated[int, msgspec.Meta(ge=0)] = 25 * GiB
    allowed_project_extensions: tuple[str, ...] = ()
    malware_scanner: Literal["signature", "clamd"] = "signature"
    malware_sha256_denylist: tuple[str, ...] = ()
    clamd_address: str | None = None
    clamd_connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 3.0
    clamd_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0

    # resumable package uploads (bytes, seconds)
    upload_session_ttl_seconds: PositiveInt = 24 * 3600
    upload_idle_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    upload_lock_ttl_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    upload_chunk_bytes: Annotated[int, msgspec.Meta(ge=1, le=5 * 1024**3)] = 8 * 1024 * 1024
    upload_max_open_sessions: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    # every streamed request body (project and package uploads, PATCH chunks): seconds from the
    # request's start to its body's last byte (UPLOAD_IDLE_TIMEOUT_SECONDS bounds each silence)
    upload_body_max_seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 24 * 3600)] = 3600.0
    upload_max_concurrent_per_user: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 4
    # publishing limits: versions one package may hold (409 too_many_versions past it), and
    # uploads opened plus single-request publications per user per hour (429 past it)
    package_max_versions: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000
    package_publishes_per_hour: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100
    # project uploads one user may start per hour (429 past it)
    project_uploads_per_hour: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100

    smtp_host: str | None = None
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "Orbsurv <no-reply@orbsurv.local>"
    smtp_tls: Literal["starttls", "ssl", "plain"] = "starttls"
    smtp_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0

    ai_base_url: str | None = None
    ai_api_key: str | None = None
    ai_model: str | None = None
    ai_connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    ai_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    ai_max_retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 2
    support_messages_per_minute: PositiveInt = 10
    support_daily_tokens: PositiveInt = 20_000
    support_history_tokens: Annotated[int, msgspec.Meta(ge=100)] = 2_000
    support_reply_tokens: Annotated[int, msgspec.Meta(ge=16, le=8192)] = 512
    alert_emails: tuple[str, ...] = ()
    captcha_secret_key: str | None = None
    captcha_verify_url: str = "https://challenges.cloudflare.com/turnstile/v0/siteverify"

    superuser_email: str | None = None
    superuser_password: str | None = None
    superuser_role: Literal["user", "admin", "dev"] = "dev"

    # None: on outside production (dev@localhost, admin@orbsurv.test work), off in production.
    allow_special_use_email_domains: bool | None = None

    order_plans: str = DEFAULT_PLANS
    order_currency: str = "USD"
    order_link_ttl_hours: Annotated[int, msgspec.Meta(ge=1, le=90 * 24)] = 7 * 24
    order_signup_url: str | None = None

    def __repr__(self) -> str:
        return f"Settings(env={self.env!r}, database={self.database_backend!r})"

    @property
    def database_backend(self) -> str:
        return self.database_url.split(":", 1)[0].split("+", 1)[0]

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def runs_jobs_in_process(self) -> bool:
        """Background jobs (mail) inside ``orbsurv serve``; production runs ``orbsurv worker``."""
        if self.inprocess_worker is None:
            return self.env == "development"
        return self.inprocess_worker

    @property
    def uses_smtp(self) -> bool:
        """Mail goes to ``SMTP_HOST`` unless ``MAIL_BACKEND=console`` was chosen."""
        return self.mail_backend != "console" and bool(self.smtp_host)

    @property
    def allows_special_use_email(self) -> bool:
        """Addresses on special-use domains (RFC 6761: ``.test``, ``localhost``, ...)."""
        if self.allow_special_use_email_domains is None:
            return not self.is_production
        return self.allow_special_use_email_domains

    @property
    def plan_catalogue(self) -> PlanCatalogue:
        return PlanCatalogue.parse(self.order_plans, self.order_currency)

    @property
    def order_signup_page(self) -> str:
        """The site's sign-up page that a pre-order's registration link opens."""
        if self.order_signup_url:
            return self.order_signup_url
        site = self.cors_allow_origins[0] if self.cors_allow_origins else self.backend_url
        return f"{site.rstrip('/')}/signup.html"

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        return self.log_format or ("json" if self.is_production else "text")


def _read_raw(environ: Mapping[str, str], env_file: str | Path | None) -> dict[str, str]:
    raw: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        raw.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    raw.update(environ)
    for alias, name in ALIASES.items():
        if raw.get(alias) and not raw.get(name):
            raw[name] = raw[alias]
    return raw


_SMTP_TLS_WORDS = {
    "true": "starttls",
    "1": "starttls",
    "yes": "starttls",
    "false": "plain",
    "0": "plain",
    "no": "plain",
    "none": "plain",
    "off": "plain",
    "on": "starttls",
}


def _prepare(raw: dict[str, str]) -> dict[str, Any]:
    known = {field.encode_name for field in msgspec.structs.fields(Settings)}
    data: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known or value.strip() == "":
            continue  # "" counts as unset
        data[name] = value.strip()
    for name in LIST_VARIABLES:
        if name in data:
            data[name] = [item.strip() for item in data[name].split(",") if item.strip()]
    if "SMTP_TLS" in data:
        data["SMTP_TLS"] = _SMTP_TLS_WORDS.get(data["SMTP_TLS"].lower(), data["SMTP_TLS"].lower())
    if "LOG_LEVEL" in data:
        data["LOG_LEVEL"] = data["LOG_LEVEL"].upper()
    return data


_PATH_IN_ERROR = re.compile(r"\s*-\s*at `\$\.([A-Z0-9_]+)[^`]*`")


def _allowed_values(name: str) -> str:
    """``'a', 'b' or 'c'`` for a setting typed as a Literal (or an optional one), else ``""``."""
    for field in msgspec.structs.fields(Settings):
        if field.encode_name != name:
            continue
        for option in (field.type, *typing.get_args(field.type)):
            if typing.get_origin(option) is Literal:
                values = [repr(value) for value in typing.get_args(option)]
                return ", ".join(values[:-1]) + " or " + values[-1]
    return ""


def _convert(data: dict[str, Any]) -> Settings:
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH_IN_ERROR.search(message)
        if match is None:
            raise SettingsError(f"invalid configuration: {message}") from None
        reason = _PATH_IN_ERROR.sub("", message)
        allowed = _allowed_values(match.group(1))
        if allowed:
            reason = f"{reason}; allowed values: {allowed}"
        raise SettingsError(f"{match.group(1)}: {reason}") from None


def _check_database_url(url: str) -> None:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        examples = " or ".join(DATABASE_SCHEMES.values())
        shown = f"scheme {scheme!r}" if scheme else "URL (no scheme://)"
        raise SettingsError(f"DATABASE_URL: unsupported {shown}; use {examples}")


#: The schemes redis-py connects with (``redis.asyncio.connection.parse_url``).
REDIS_SCHEMES = ("redis", "rediss", "unix")


def _check_redis_url(url: str | None) -> None:
    """Refuse a ``REDIS_URL`` that redis-py cannot use, before any process starts: the client
    would otherwise fail only on first use, inside a worker. The URL is not echoed (it may hold
    a password)."""
    if url is None:
        return
    from redis.asyncio.connection import parse_url

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "URL (no scheme://)"
        raise SettingsError(
            f"REDIS_URL: unsupported {shown}; use redis://host:6379/0, rediss://host:6379/0 "
            "or unix:///path/to/redis.sock"
        )
    try:
        parse_url(url)
    except ValueError as exc:
        raise SettingsError(f"REDIS_URL: not a usable Redis URL ({exc})") from None


def _is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return lowered in PLACEHOLDER_SECRETS or any(m in lowered for m in _PLACEHOLDER_MARKERS)


def _repeats_a_pattern(value: str) -> bool:
    """True when, for some period ``p`` up to half the length, at least three quarters of the
    characters equal the one ``p`` places before them (``aaaa``, ``wordwordword1``)."""
    text = value[:256]
    for period in range(1, len(text) // 2 + 1):
        same = sum(1 for i in range(period, len(text)) if text[i] == text[i - period])
        if same >= 0.75 * (len(text) - period) and same >= len(text) // 2:
            return True
    return False


def shannon_bits_per_char(value: str) -> float:
    """The Shannon entropy of the character frequencies of ``value``, in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def low_entropy_reason(value: str) -> str | None:
    """Why ``value`` is too guessable to be a secret, or ``None``."""
    if _repeats_a_pattern(value):
        return "is mostly one short pattern repeated"
    distinct = len(set(value))
    if distinct < MIN_SECRET_SYMBOLS:
        return f"uses only {distinct} distinct characters (at least {MIN_SECRET_SYMBOLS})"
    bits = shannon_bits_per_char(value)
    if bits < MIN_SECRET_BITS_PER_CHAR:
        return (
            f"has too little entropy ({bits:.1f} bits per character, "
            f"at least {MIN_SECRET_BITS_PER_CHAR:.1f})"
        )
    return None


def _check_production_secrets(settings: Settings, raw: Mapping[str, str]) -> None:
    values = {name: getattr(settings, name.lower()) for name in SECRET_NAMES}
    for name, value in values.items():
        if not value:
            raise SettingsError(f"{name}: required when ENV=production")
        if len(value) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"{name}: must be at least {MIN_SECRET_LENGTH} characters; {GENERATE_ADVICE}"
            )
        if _is_placeholder(value):
            raise SettingsError(f"{name}: is a placeholder value; {GENERATE_ADVICE}")
        if reason := low_entropy_reason(value):
            raise SettingsError(f"{name}: {reason}; {GENERATE_ADVICE}")
    names = list(values)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if values[first] == values[second]:
                raise SettingsError(f"{second}: must differ from {first}")
    if raw.get("DEV_MASTER_OTP", "").strip():
        raise SettingsError("DEV_MASTER_OTP: must not be set when ENV=production")
    token = settings.metrics_token
    if token is not None:  # a bearer secret like the others, and not one of them
        if len(token) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"METRICS_TOKEN: must be at least {MIN_SECRET_LENGTH} characters; {GENERATE_ADVICE}"
            )
        if _is_placeholder(token):
            raise SettingsError(f"METRICS_TOKEN: is a placeholder value; {GENERATE_ADVICE}")
        if reason := low_entropy_reason(token):
            raise SettingsError(f"METRICS_TOKEN: {reason}; {GENERATE_ADVICE}")
        for name, value in values.items():
            if value == token:
                raise SettingsError(f"METRICS_TOKEN: must differ from {name}")


def _development_secrets(var_dir: Path) -> dict[str, str]:
    """Secrets generated once and kept in ``var_dir/secrets.json`` (mode 0600)."""
    path = var_dir / "secrets.json"
    stored: dict[str, str] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingsError(f"VAR_DIR: cannot read {path}: {exc}") from None
        stored = {k: v for k, v in loaded.items() if isinstance(v, str)}
    missing = [name for name in SECRET_NAMES if not stored.get(name)]
    if missing:
        stored.update({name: secrets.token_urlsafe(48) for name in missing})
        var_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(stored, handle, indent=2)
    return stored


def _check_origins(origins: tuple[str, ...]) -> None:
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
            raise SettingsError(
                f"CORS_ALLOW_ORIGINS: {origin!r} is not an origin like https://app.example.com"
            )


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _check_backend_url(url: str, *, production: bool) -> None:
    """``BACKEND_URL`` is the base of every link in mail (verification, reset, orders), so it
    must be an absolute ``http`` or ``https`` URL with a host and nothing a link could not be
    appended to (no user info, query or fragment; RFC 3986 section 3). In production it must be
    ``https`` unless the host is loopback (a single-machine deployment behind its own proxy):
    a reset link sent over plain http gives its token to anyone on the path (OWASP ASVS V9.1).
    Raises ``SettingsError`` naming ``BACKEND_URL``."""
    example = "like https://api.example.com"
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - parsed for its errors (a port that is not a number)
    except ValueError:
        raise SettingsError(f"BACKEND_URL: {url[:80]!r} is not a URL {example}") from None
    if parts.scheme.lower() not in {"http", "https"} or not host:
        raise SettingsError(
            f"BACKEND_URL: {url[:80]!r} must be an absolute http or https URL with a host, "
            f"{example} (it is the base of every link in mail)"
        )
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise SettingsError(f"BACKEND_URL: must have no user info, query or fragment ({example})")
    if production and parts.scheme.lower() != "https" and host.lower() not in _LOOPBACK_HOSTS:
        raise SettingsError(
            "BACKEND_URL: must be https when ENV=production (mail links carry single-use "
            f"tokens); got {parts.scheme}://{host}"
        )


def _check_proxies(proxies: tuple[str, ...]) -> None:
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES: {proxy!r} is not an IP address or CIDR"
            ) from None


def _check_production_wiring(settings: Settings, data: Mapping[str, Any]) -> None:
    """Defaults that suit one laptop but would quietly break a deployment."""
    if "BACKEND_URL" not in data:
        raise SettingsError(
            "BACKEND_URL: required when ENV=production (the public URL put into mail links, "
            "e.g. https://api.example.com)"
        )
    if settings.mail_backend == "smtp" and not settings.smtp_host:
        raise SettingsError("SMTP_HOST: required when MAIL_BACKEND=smtp")
    if settings.mail_backend is None and not settings.smtp_host:
        raise SettingsError(
            "SMTP_HOST: required when ENV=production; set MAIL_BACKEND=console to keep mail "
            "unsent instead (the log gets only each message's recipient and subject; "
            "`orbsurv mail list` prints the messages, reset and verification links included)"
        )


def _check_superuser(settings: Settings) -> str | None:
    """The seeded account's address, normalised as ``orbsurv create-user`` and sign-in normalise
    it (``checked_email``: IDNA domain, Unicode NFC), so the account can sign in; ``None`` when
    no superuser is configured. Raises ``SettingsError`` naming ``SUPERUSER_EMAIL`` for an
    address that is not valid and ``SUPERUSER_PASSWORD`` for one that breaks the policy."""
    from orbsurv.adapters.validation import checked_email

    if bool(settings.superuser_email) != bool(settings.superuser_password):
        raise SettingsError("SUPERUSER_EMAIL: set it together with SUPERUSER_PASSWORD")
    if not settings.superuser_email or not settings.superuser_password:
        return None
    try:
        email = checked_email(
            settings.superuser_email,
            field="SUPERUSER_EMAIL",
            allow_special_use=settings.allows_special_use_email,
        )
    except FieldInvalid as exc:
        raise SettingsError(f"SUPERUSER_EMAIL: {exc.message}") from None
    try:
        check_password_policy(settings.superuser_password, field="SUPERUSER_PASSWORD")
    except FieldInvalid as exc:
        raise SettingsError(f"SUPERUSER_PASSWORD: {exc.message}") from None
    return email


def _check_orders(settings: Settings) -> None:
    try:
        settings.plan_catalogue  # noqa: B018 - parsed for its errors
    except ValueError as exc:
        name = "ORDER_CURRENCY" if "currency code" in str(exc) else "ORDER_PLANS"
        raise SettingsError(f"{name}: {exc}") from None
    if settings.order_signup_url is not None:
        parts = urlsplit(settings.order_signup_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise SettingsError(
                "ORDER_SIGNUP_URL: must be an http(s) URL like https://site/signup.html"
            )
    if settings.is_production and settings.allow_special_use_email_domains:
        raise SettingsError("ALLOW_SPECIAL_USE_EMAIL_DOMAINS: must not be on when ENV=production")


def _check_assistant(settings: Settings) -> None:
    if settings.ai_base_url is None:
        return
    parts = urlsplit(settings.ai_base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SettingsError("AI_BASE_URL: must be an http or https URL like https://host/v1")
    if not settings.ai_model:
        raise SettingsError("AI_MODEL: required when AI_BASE_URL is set")


def _check_scanning(settings: Settings) -> None:
    if settings.malware_scanner == "clamd":
        if not settings.clamd_address:
            raise SettingsError("CLAMD_ADDRESS: required when MALWARE_SCANNER=clamd")
        address = settings.clamd_address
        if not address.startswith(("tcp://", "unix://", "/")):
            raise SettingsError("CLAMD_ADDRESS: use tcp://host:port or unix:///path/to/socket")
    for digest in settings.malware_sha256_denylist:
        if not SHA256_HEX.match(digest):
            raise SettingsError(f"MALWARE_SHA256_DENYLIST: {digest[:80]!r} is not a SHA-256 hex")


def check_worker_count(settings: Settings, workers: int) -> None:
    """Refuse ``workers`` > 1 API processes without ``REDIS_URL``.

    Without Redis every process keeps its own token denylist, rate-limit counters and locks: a
    sign-out on one worker leaves the access token valid on the others (OWASP ASVS V3.3.1,
    logout invalidates the session) and every limit is N times looser. Raises ``SettingsError``
    naming ``REDIS_URL``.
    """
    if workers > 1 and not settings.redis_url:
        raise SettingsError(
            f"REDIS_URL: required to run {workers} worker processes; without it each process "
            "keeps its own token denylist, rate limits and locks, so a sign-out on one worker "
            "leaves the token valid on the others and every limit is that many times looser. "
            "Set REDIS_URL=redis://host:6379/0 or run --workers 1"
        )


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> Settings:
    """Validated settings from ``environ`` (default: the process environment) and ``env_file``."""
    raw = _read_raw(os.environ if environ is None else environ, env_file)
    data = _prepare(raw)
    var_dir = str(data.get("VAR_DIR", "./var")).rstrip("/") or "/"
    data.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{var_dir}/orbsurv.db")
    data.setdefault("UPLOAD_ROOT", f"{var_dir}/uploads")
    settings = _convert(data)
    _check_database_url(settings.database_url)
    _check_redis_url(settings.redis_url)
    _check_origins(settings.cors_allow_origins)
    _check_backend_url(settings.backend_url, production=settings.is_production)
    _check_proxies(settings.trusted_proxies)
    if settings.storage_backend == "s3" and not settings.s3_bucket:
        raise SettingsError("S3_BUCKET: required when STORAGE_BACKEND=s3")
    _check_scanning(settings)
    superuser_email = _check_superuser(settings)
    _check_orders(settings)
    _check_assistant(settings)

    updates: dict[str, Any] = {
        "CORS_ALLOW_ORIGINS": [origin.rstrip("/") for origin in settings.cors_allow_origins]
    }
    if superuser_email is not None:
        updates["SUPERUSER_EMAIL"] = superuser_email
    if settings.is_production:
        _check_production_secrets(settings, raw)
        _check_production_wiring(settings, data)
    else:
        missing = [name for name in SECRET_NAMES if not data.get(name)]
        if missing:
            generated = (
                _development_secrets(Path(settings.var_dir))
                if settings.env == "development"
                else {name: secrets.token_urlsafe(48) for name in SECRET_NAMES}
            )
            updates.update({name: generated[name] for name in missing})
        if settings.env == "development" and settings.dev_master_otp is None:
            updates["DEV_MASTER_OTP"] = "000000"
        if settings.env == "test":
            updates["DEV_MASTER_OTP"] = None
    return _convert({**data, **updates})
