"""Settings: read from the environment and an optional ``.env``, typed and validated at start-up.

Every variable of the contract's Configuration section lives here. A bad value stops the process
with a message that names the variable. Secrets:

* ``ENV=production`` refuses a missing, short (<32), placeholder or reused secret, and refuses to
  start while ``DEV_MASTER_OTP`` is set;
* ``ENV=development`` (the default) generates missing secrets once into ``VAR_DIR/secrets.json``
  and reuses them, so restarts keep sessions;
* ``ENV=test`` generates missing secrets in memory.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from dotenv import dotenv_values

from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.identity import check_password_policy

Environment = Literal["development", "production", "test"]
SECRET_NAMES = ("JWT_SECRET_KEY", "EMAIL_VERIFY_SECRET", "PASSWORD_RESET_SECRET")
MIN_SECRET_LENGTH = 32
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


class SettingsError(ValueError):
    """The configuration is unusable; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    env: Environment = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] | None = None
    var_dir: str = "./var"
    inprocess_worker: bool | None = None  # None: on in development, off elsewhere

    database_url: str = "sqlite+aiosqlite:///./var/orbsurv.db"
    redis_url: str | None = None

    jwt_secret_key: str = ""
    email_verify_secret: str = ""
    password_reset_secret: str = ""
    access_token_expire_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 15
    refresh_token_expire_minutes: PositiveInt = 30 * 24 * 60
    refresh_reuse_grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=300)] = 10
    auth_require_verified_email: bool = False
    dev_master_otp: str | None = None
    trusted_proxies: tuple[str, ...] = ()

    cors_allow_origins: tuple[str, ...] = ()
    backend_url: str = "http://127.0.0.1:8000"
    command_center_url: str = "/admin"
    max_json_body_bytes: PositiveInt = 1024 * 1024

    storage_backend: Literal["local", "s3"] = "local"
    upload_root: str = "./var/uploads"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    max_upload_bytes: PositiveInt = 5 * GiB
    user_quota_bytes: Annotated[int, msgspec.Meta(ge=0)] = 25 * GiB
    allowed_project_extensions: tuple[str, ...] = ()
    malware_scanner: Literal["signature", "clamd"] = "signature"
    malware_sha256_denylist: tuple[str, ...] = ()
    clamd_address: str | None = None
    clamd_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0

    # resumable package uploads (bytes, seconds)
    upload_session_ttl_seconds: PositiveInt = 24 * 3600
    upload_idle_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    upload_lock_ttl_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    upload_chunk_bytes: Annotated[int, msgspec.Meta(ge=1, le=5 * 1024**3)] = 8 * 1024 * 1024

    smtp_host: str | None = None
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "Orbsurv <no-reply@orbsurv.local>"
    smtp_tls: Literal["starttls", "ssl", "plain"] = "starttls"

    ai_base_url: str | None = None
    ai_api_key: str | None = None
    ai_model: str | None = None
    alert_emails: tuple[str, ...] = ()
    captcha_secret_key: str | None = None
    captcha_verify_url: str = "https://challenges.cloudflare.com/turnstile/v0/siteverify"

    superuser_email: str | None = None
    superuser_password: str | None = None
    superuser_role: Literal["user", "admin", "dev"] = "dev"

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


def _convert(data: dict[str, Any]) -> Settings:
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH_IN_ERROR.search(message)
        if match is None:
            raise SettingsError(f"invalid configuration: {message}") from None
        reason = _PATH_IN_ERROR.sub("", message)
        raise SettingsError(f"{match.group(1)}: {reason}") from None


def _is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return lowered in PLACEHOLDER_SECRETS or any(m in lowered for m in _PLACEHOLDER_MARKERS)


def _check_production_secrets(settings: Settings, raw: Mapping[str, str]) -> None:
    values = {name: getattr(settings, name.lower()) for name in SECRET_NAMES}
    for name, value in values.items():
        if not value:
            raise SettingsError(f"{name}: required when ENV=production")
        if len(value) < MIN_SECRET_LENGTH:
            raise SettingsError(f"{name}: must be at least {MIN_SECRET_LENGTH} characters")
        if _is_placeholder(value):
            raise SettingsError(f"{name}: is a placeholder value; generate a random secret")
    names = list(values)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if values[first] == values[second]:
                raise SettingsError(f"{second}: must differ from {first}")
    if raw.get("DEV_MASTER_OTP", "").strip():
        raise SettingsError("DEV_MASTER_OTP: must not be set when ENV=production")


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


def _check_proxies(proxies: tuple[str, ...]) -> None:
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES: {proxy!r} is not an IP address or CIDR"
            ) from None


def _check_superuser(settings: Settings) -> None:
    if bool(settings.superuser_email) != bool(settings.superuser_password):
        raise SettingsError("SUPERUSER_EMAIL: set it together with SUPERUSER_PASSWORD")
    if settings.superuser_password:
        try:
            check_password_policy(settings.superuser_password, field="SUPERUSER_PASSWORD")
        except FieldInvalid as exc:
            raise SettingsError(f"SUPERUSER_PASSWORD: {exc.message}") from None


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


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> Settings:
    """Validated settings from ``environ`` (default: the process environment) and ``env_file``."""
    raw = _read_raw(os.environ if environ is None else environ, env_file)
    data = _prepare(raw)
    settings = _convert(data)
    _check_origins(settings.cors_allow_origins)
    _check_proxies(settings.trusted_proxies)
    if settings.storage_backend == "s3" and not settings.s3_bucket:
        raise SettingsError("S3_BUCKET: required when STORAGE_BACKEND=s3")
    _check_scanning(settings)
    _check_superuser(settings)

    updates: dict[str, Any] = {
        "CORS_ALLOW_ORIGINS": [origin.rstrip("/") for origin in settings.cors_allow_origins]
    }
    if settings.is_production:
        _check_production_secrets(settings, raw)
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
