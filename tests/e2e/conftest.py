"""The real server process, started the way the README starts it, on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live import CLI, clean_env, run_cli, running_server, wait_until_healthy

__all__ = ["CLI", "clean_env", "run_cli", "running_server", "wait_until_healthy"]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``orbsurv serve`` with no configuration at all, in an empty working directory, but for
    the registration budget: the fuzzers open an account per operation, all from loopback."""
    env = clean_env(REGISTRATION_RATE_LIMIT="100000")
    with running_server(tmp_path_factory.mktemp("live"), env) as url:
        yield url


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that believes X-Forwarded-For from loopback, as behind a local proxy."""
    env = clean_env(ENV="test", TRUSTED_PROXIES="127.0.0.1/32")
    with running_server(tmp_path_factory.mktemp("proxied"), env) as url:
        yield url
