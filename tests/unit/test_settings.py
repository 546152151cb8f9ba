from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest

from orbsurv.main.cli import main
from orbsurv.main.settings import SECRET_NAMES, SettingsError, load_settings

STRONG = {
    "JWT_SECRET_KEY": "jV3q-8uTzR0wXb1YhNc7LmKe5Pa9SdFg2oHi4",
    "EMAIL_VERIFY_SECRET": "eQ7xW2_kD9rB4nM6tY1uZ8cF0gH3jL5vP-sA",
    "PASSWORD_RESET_SECRET": "pL4@mK9$vR2#Qx7!aZ1sX3dC5fV7gB9hN0jM",
}


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path)}, env_file=None)
    assert settings.env == "development"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.redis_url is None
    assert settings.storage_backend == "local"
    assert settings.smtp_host is None
    assert settings.dev_master_otp == "000000"
    assert all(len(getattr(settings, n.lower())) >= 32 for n in SECRET_NAMES)


def test_development_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings({"VAR_DIR": str(tmp_path)}, env_file=None)
    second = load_settings({"VAR_DIR": str(tmp_path)}, env_file=None)
    assert first.jwt_secret_key == second.jwt_secret_key
    assert len({first.jwt_secret_key, first.email_verify_secret, first.password_reset_secret}) == 3
    mode = (tmp_path / "secrets.json").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_test_environment_generates_secrets_in_memory(tmp_path: Path) -> None:
    settings = load_settings({"ENV": "test", "VAR_DIR": str(tmp_path)}, env_file=None)
    assert len(settings.jwt_secret_key) >= 32
    assert settings.dev_master_otp is None
    assert not (tmp_path / "secrets.json").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ACCESS_TOKEN_EXPIRE_MINUTES": "soon"}, "ACCESS_TOKEN_EXPIRE_MINUTES"),
        ({"ACCESS_TOKEN_EXPIRE_MINUTES": "0"}, "ACCESS_TOKEN_EXPIRE_MINUTES"),
        ({"ENV": "staging"}, "ENV"),
        ({"SMTP_PORT": "70000"}, "SMTP_PORT"),
        ({"STORAGE_BACKEND": "ftp"}, "STORAGE_BACKEND"),
        ({"STORAGE_BACKEND": "s3"}, "S3_BUCKET"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8, not-an-ip"}, "TRUSTED_PROXIES"),
        (
            {"CORS_ALLOW_ORIGINS": "https://ok.example, https://bad.example/path"},
            "CORS_ALLOW_ORIGINS",
        ),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"AI_BASE_URL": "http://127.0.0.1:9/v1"}, "AI_MODEL"),
        ({"AI_BASE_URL": "file:///etc", "AI_MODEL": "m"}, "AI_BASE_URL"),
        ({"AI_TIMEOUT_SECONDS": "0"}, "AI_TIMEOUT_SECONDS"),
        ({"SUPPORT_DAILY_TOKENS": "0"}, "SUPPORT_DAILY_TOKENS"),
        ({"MAX_UPLOAD_BYTES": "0"}, "MAX_UPLOAD_BYTES"),
        ({"USER_QUOTA_BYTES": "lots"}, "USER_QUOTA_BYTES"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),
        ({"UPLOAD_BODY_MAX_SECONDS": "0"}, "UPLOAD_BODY_MAX_SECONDS"),
        ({"UPLOAD_MAX_CONCURRENT_PER_USER": "0"}, "UPLOAD_MAX_CONCURRENT_PER_USER"),
        ({"MALWARE_SCANNER": "clamd"}, "CLAMD_ADDRESS"),
        ({"MALWARE_SCANNER": "clamd", "CLAMD_ADDRESS": "clamd:3310"}, "CLAMD_ADDRESS"),
        ({"MALWARE_SHA256_DENYLIST": "abc"}, "MALWARE_SHA256_DENYLIST"),
        ({"MALWARE_SCANNER": "mcafee"}, "MALWARE_SCANNER"),
        ({"REDIS_URL": "notaurl"}, "REDIS_URL"),
        ({"REDIS_URL": "http://127.0.0.1:6379/9"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:port/0"}, "REDIS_URL"),
        (
            {"SUPERUSER_EMAIL": "not an address", "SUPERUSER_PASSWORD": "a long passphrase"},
            "SUPERUSER_EMAIL",
        ),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"VAR_DIR": str(tmp_path), **env}, env_file=None)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache:6380/1", "unix:///run/redis.sock"]
)
def test_every_scheme_redis_py_connects_with_is_accepted(url: str, tmp_path: Path) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path), "REDIS_URL": url}, env_file=None)
    assert settings.redis_url == url


@pytest.mark.parametrize("command", [["check"], ["serve", "--port", "8601"]])
def test_a_bad_redis_url_stops_every_command_with_one_line(
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENV", "test")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REDIS_URL", "http://user:hunter2@127.0.0.1:6379/9")
    with pytest.raises(SystemExit) as refused:
        main(command)
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "REDIS_URL" in error
    assert "hunter2" not in error


@pytest.mark.parametrize("typed", ["Root@XN--BCHER-KVA.DE", "root@bücher.de", " ROOT@Bücher.DE "])
def test_the_superuser_address_is_normalised_like_sign_in(typed: str, tmp_path: Path) -> None:
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "SUPERUSER_EMAIL": typed,
            "SUPERUSER_PASSWORD": "a long passphrase",
        },
        env_file=None,
    )
    assert settings.superuser_email == "root@bücher.de"


def test_production_refuses_a_special_use_superuser_address() -> None:
    with pytest.raises(SettingsError, match="SUPERUSER_EMAIL"):
        load_settings(
            production(SUPERUSER_EMAIL="root@orbsurv.test", SUPERUSER_PASSWORD="a long passphrase"),
            env_file=None,
        )


def production(**overrides: str) -> dict[str, str]:
    return {
        "ENV": "production",
        "BACKEND_URL": "https://api.example.com",
        "SMTP_HOST": "mail.example.com",
        **STRONG,
        **overrides,
    }


def test_production_accepts_strong_distinct_secrets() -> None:
    settings = load_settings(production(), env_file=None)
    assert settings.is_production
    assert settings.dev_master_otp is None
    assert settings.effective_log_format == "json"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY: required"),
        (
            {"EMAIL_VERIFY_SECRET": "short-but-random-Qx7!"},
            "EMAIL_VERIFY_SECRET: must be at least 32",
        ),
        ({"PASSWORD_RESET_SECRET": "changeme-changeme-changeme-changeme"}, "placeholder"),
        ({"PASSWORD_RESET_SECRET": STRONG["JWT_SECRET_KEY"]}, "must differ from JWT_SECRET_KEY"),
        ({"DEV_MASTER_OTP": "000000"}, "DEV_MASTER_OTP"),
        ({"BACKEND_URL": ""}, "BACKEND_URL: required when ENV=production"),
        (
            {"SMTP_HOST": ""},
            "SMTP_HOST: required when ENV=production; set MAIL_BACKEND=console to keep mail "
            "unsent instead \\(the log gets only each message's recipient and subject; "
            "`orbsurv mail list` prints the messages",
        ),
        ({"SMTP_HOST": "", "MAIL_BACKEND": "smtp"}, "SMTP_HOST: required when MAIL_BACKEND=smtp"),
        ({"METRICS_TOKEN": "short-but-random-Qx7!"}, "METRICS_TOKEN: must be at least 32"),
        ({"METRICS_TOKEN": "a" * 48}, "METRICS_TOKEN: .*pattern repeated"),
        (
            {"METRICS_TOKEN": STRONG["JWT_SECRET_KEY"]},
            "METRICS_TOKEN: must differ from JWT_SECRET_KEY",
        ),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT"),
    ],
)
def test_production_refuses_weak_configuration(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(production(**env), env_file=None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a" * 48, "pattern repeated"),
        ("orbsurv" * 7, "pattern repeated"),
        ("correcthorse" * 4, "pattern repeated"),
        ("secretsecretsecretsecretsecret42", "pattern repeated"),
        ("abababababababababababababababab", "pattern repeated"),
        ("01234566543210135602466420356114", "distinct characters"),
        ("aaaaaaaaaaaaaaaaaaaaabcdefghijklmnop", "entropy"),
    ],
)
def test_production_refuses_low_entropy_secrets(value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(production(JWT_SECRET_KEY=value), env_file=None)
    message = str(refused.value)
    assert message.startswith("JWT_SECRET_KEY: ")
    assert reason in message
    assert "orbsurv secret" in message
    assert value not in message  # the refusal never echoes the secret


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(32), lambda: secrets.token_hex(16)])
def test_production_accepts_real_random_secrets(make: Any) -> None:
    for _ in range(200):
        keys = {name: make() for name in SECRET_NAMES}
        assert load_settings(production(**keys), env_file=None).is_production


def test_the_cli_prints_a_fresh_secret_that_production_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = []
    for _ in range(3):
        assert main(["secret"]) == 0
        made.append(capsys.readouterr().out.strip())
    assert len(set(made)) == 3
    assert all(len(value) == 64 for value in made)
    keys = dict(zip(SECRET_NAMES, made, strict=True))
    assert load_settings(production(**keys), env_file=None).is_production


def test_aliases_and_lists(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "SECRET_KEY": "k" * 40,
            "FRONTEND_URL": "https://a.example, https://b.example/",
            "TRUSTED_PROXIES": "10.0.0.0/8,::1",
            "SMTP_TLS": "false",
        },
        env_file=None,
    )
    assert settings.jwt_secret_key == "k" * 40
    assert settings.cors_allow_origins == ("https://a.example", "https://b.example")
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")
    assert settings.smtp_tls == "plain"


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=debug\nBACKEND_URL=https://api.example\nREDIS_URL=\n")
    settings = load_settings(
        {"VAR_DIR": str(tmp_path), "BACKEND_URL": "https://override.example"}, env_file=env_file
    )
    assert settings.log_level == "DEBUG"
    assert settings.backend_url == "https://override.example"
    assert settings.redis_url is None  # "" counts as unset


def test_repr_never_shows_secrets(tmp_path: Path) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path)}, env_file=None)
    assert settings.jwt_secret_key not in repr(settings)


def test_production_takes_the_console_mailer_and_a_local_url_only_when_chosen() -> None:
    settings = load_settings(
        production(SMTP_HOST="", MAIL_BACKEND="console", BACKEND_URL="http://127.0.0.1:8000"),
        env_file=None,
    )
    assert not settings.uses_smtp
    assert settings.backend_url == "http://127.0.0.1:8000"
    assert load_settings(production(), env_file=None).uses_smtp


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENV": "prod"}, "allowed values: 'development', 'production' or 'test'"),
        ({"MAIL_BACKEND": "pigeon"}, "MAIL_BACKEND: .*allowed values: 'smtp' or 'console'"),
        ({"DATABASE_URL": "postgres://x"}, "DATABASE_URL: unsupported scheme 'postgres'; use "),
        ({"DATABASE_URL": "orbsurv.db"}, "postgresql\\+asyncpg://"),
    ],
)
def test_a_bad_choice_lists_what_works(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"VAR_DIR": str(tmp_path), **env}, env_file=None)


def test_var_dir_moves_everything_development_keeps(tmp_path: Path) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path / "state")}, env_file=None)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/state/orbsurv.db"
    assert settings.upload_root == f"{tmp_path}/state/uploads"
    assert (tmp_path / "state" / "secrets.json").is_file()
    chosen = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "UPLOAD_ROOT": "/srv/files",
            "DATABASE_URL": "sqlite+aiosqlite:///x.db",
        },
        env_file=None,
    )
    assert (chosen.upload_root, chosen.database_url) == ("/srv/files", "sqlite+aiosqlite:///x.db")


@pytest.mark.parametrize(
    ("spelling", "meaning"),
    [
        ("none", "plain"),
        ("OFF", "plain"),
        ("on", "starttls"),
        ("SSL", "ssl"),
        ("StartTLS", "starttls"),
    ],
)
def test_smtp_tls_accepts_the_common_spellings(tmp_path: Path, spelling: str, meaning: str) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path), "SMTP_TLS": spelling}, env_file=None)
    assert settings.smtp_tls == meaning


def test_special_use_email_domains_outside_production_only(tmp_path: Path) -> None:
    for env in ("development", "test"):
        settings = load_settings({"ENV": env, "VAR_DIR": str(tmp_path)}, env_file=None)
        assert settings.allows_special_use_email
    off = load_settings(
        {"ENV": "test", "VAR_DIR": str(tmp_path), "ALLOW_SPECIAL_USE_EMAIL_DOMAINS": "false"},
        env_file=None,
    )
    assert not off.allows_special_use_email
    production_settings = load_settings(production(), env_file=None)
    assert not production_settings.allows_special_use_email
    with pytest.raises(SettingsError, match=r"^ALLOW_SPECIAL_USE_EMAIL_DOMAINS"):
        load_settings(
            production(ALLOW_SPECIAL_USE_EMAIL_DOMAINS="true"),
            env_file=None,
        )


def test_the_order_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "ORDER_PLANS": "solo:Solo=10,team=25.50",
            "ORDER_CURRENCY": "EUR",
            "FRONTEND_URL": "https://www.orbsurv.example",
        },
        env_file=None,
    )
    assert [(p.key, p.price_cents, p.currency) for p in settings.plan_catalogue.plans] == [
        ("solo", 1000, "EUR"),
        ("team", 2550, "EUR"),
    ]
    assert settings.order_signup_page == "https://www.orbsurv.example/signup.html"
    assert settings.order_link_ttl_hours == 7 * 24
    for env, name in (
        ({"ORDER_PLANS": "gold"}, "ORDER_PLANS"),
        ({"ORDER_CURRENCY": "usd"}, "ORDER_CURRENCY"),
        ({"ORDER_LINK_TTL_HOURS": "0"}, "ORDER_LINK_TTL_HOURS"),
        ({"ORDER_SIGNUP_URL": "javascript:alert(1)"}, "ORDER_SIGNUP_URL"),
    ):
        with pytest.raises(SettingsError, match=rf"^{name}"):
            load_settings({"VAR_DIR": str(tmp_path), **env}, env_file=None)


def test_file_limits_and_lists(tmp_path: Path) -> None:
    digest = "ab" * 32
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "MAX_UPLOAD_BYTES": "6442450944",
            "ALLOWED_PROJECT_EXTENSIONS": "zip, tar.gz",
            "MALWARE_SHA256_DENYLIST": digest,
        },
        env_file=None,
    )
    assert settings.max_upload_bytes == 6 * 1024**3
    assert settings.user_quota_bytes == 25 * 1024**3
    assert settings.allowed_project_extensions == ("zip", "tar.gz")
    assert settings.malware_sha256_denylist == (digest,)


class _Granian:
    """Stands in for the HTTP server: records that ``orbsurv serve`` got as far as starting it."""

    started: list[int] = []

    def __init__(self, *args: Any, workers: int, **kwargs: Any) -> None:
        self.workers = workers

    def serve(self) -> None:
        self.started.append(self.workers)


@pytest.fixture
def serve_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean working directory and environment for ``orbsurv serve``, with a fake server."""
    monkeypatch.chdir(tmp_path)
    for name in ("REDIS_URL", "DATABASE_URL", "UPLOAD_ROOT", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENV", "test")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.setattr("granian.Granian", _Granian)
    _Granian.started = []
    return tmp_path


def test_serve_refuses_several_workers_without_redis(
    serve_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--port", "8405", "--workers", "2"])
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "REDIS_URL" in error
    assert "denylist, rate limits and locks" in error
    assert _Granian.started == []
    assert not (serve_env / "var" / "orbsurv.db").exists()  # refused before migrating


def test_serve_runs_several_workers_with_redis(
    serve_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in production(REDIS_URL="redis://127.0.0.1:6379/0").items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--port", "8405", "--workers", "2"]) == 0
    assert _Granian.started == [2]
    assert (serve_env / "metrics").is_dir()  # the operator's directory stays


def test_the_metrics_directory_serve_made_is_removed_when_it_stops(
    serve_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in production(REDIS_URL="redis://127.0.0.1:6379/0").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    made: list[Path] = []
    monkeypatch.setattr(
        _Granian, "serve", lambda self: made.append(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    )
    assert main(["serve", "--port", "8405", "--workers", "2"]) == 0
    assert len(made) == 1
    assert made[0].name.startswith("orbsurv-metrics-")
    assert not made[0].exists()


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_serve_refuses_fewer_than_one_worker(
    count: str, serve_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--port", "8405", "--workers", count])
    assert refused.value.code == 2
    assert "--workers" in capsys.readouterr().err
    assert _Granian.started == []


def test_serve_runs_one_worker_without_redis(serve_env: Path) -> None:
    assert main(["serve", "--port", "8405", "--workers", "1"]) == 0
    assert _Granian.started == [1]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not-a-url", "must be an absolute http or https URL with a host"),
        ("ftp://x", "must be an absolute http or https URL with a host"),
        ("https://", "must be an absolute http or https URL with a host"),
        ("https://user:pw@api.example.com", "no user info, query or fragment"),
        ("https://api.example.com/?a=1", "no user info, query or fragment"),
        ("http://api.example.com", "must be https when ENV=production"),
    ],
)
def test_production_refuses_a_backend_url_that_links_cannot_be_built_on(
    url: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=f"BACKEND_URL: .*{message}"):
        load_settings(production(BACKEND_URL=url), env_file=None)


@pytest.mark.parametrize("url", ["not-a-url", "ftp://x"])
def test_every_environment_refuses_a_backend_url_that_is_not_http(url: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="BACKEND_URL"):
        load_settings({"VAR_DIR": str(tmp_path), "BACKEND_URL": url}, env_file=None)


def test_production_takes_an_https_backend_url_or_a_loopback_one() -> None:
    for url in ("https://api.example.com/orbsurv", "http://localhost:8000"):
        assert load_settings(production(BACKEND_URL=url), env_file=None).backend_url == url
