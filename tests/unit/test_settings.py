from __future__ import annotations

import stat
from pathlib import Path

import pytest

from orbsurv.main.settings import SECRET_NAMES, SettingsError, load_settings

STRONG = {
    "JWT_SECRET_KEY": "j" * 16 + "Qx7!vR2#mK9$pL4@",
    "EMAIL_VERIFY_SECRET": "e" * 16 + "Qx7!vR2#mK9$pL4@",
    "PASSWORD_RESET_SECRET": "p" * 16 + "Qx7!vR2#mK9$pL4@",
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
        ({"MAX_UPLOAD_BYTES": "0"}, "MAX_UPLOAD_BYTES"),
        ({"USER_QUOTA_BYTES": "lots"}, "USER_QUOTA_BYTES"),
        ({"MALWARE_SCANNER": "clamd"}, "CLAMD_ADDRESS"),
        ({"MALWARE_SCANNER": "clamd", "CLAMD_ADDRESS": "clamd:3310"}, "CLAMD_ADDRESS"),
        ({"MALWARE_SHA256_DENYLIST": "abc"}, "MALWARE_SHA256_DENYLIST"),
        ({"MALWARE_SCANNER": "mcafee"}, "MALWARE_SCANNER"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"VAR_DIR": str(tmp_path), **env}, env_file=None)


def production(**overrides: str) -> dict[str, str]:
    return {"ENV": "production", **STRONG, **overrides}


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
    ],
)
def test_production_refuses_weak_configuration(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(production(**env), env_file=None)


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
