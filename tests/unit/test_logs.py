from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from orbsurv.main.logs import configure_logging
from orbsurv.main.settings import load_settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_log_file_gets_the_stdout_format_and_rotates_by_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logs" / "orbsurv.log"
    settings = load_settings(
        {
            "ENV": "test",
            "LOG_FORMAT": "json",
            "LOG_FILE_PATH": str(path),
            "LOG_FILE_MAX_BYTES": "2000",
            "LOG_FILE_BACKUPS": "2",
        },
        env_file=None,
    )
    configure_logging(settings)
    logging.getLogger("orbsurv.test").warning("first line")
    first = path.read_text().splitlines()
    assert len(first) == 1
    assert first[0] in capsys.readouterr().err  # the same line on stderr
    assert '"message": "first line"' in first[0]
    for n in range(100):
        logging.getLogger("orbsurv.test").warning("line %d", n)
    assert path.stat().st_size <= 2000
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "orbsurv.log",
        "orbsurv.log.1",
        "orbsurv.log.2",
    ]


@pytest.mark.usefixtures("restore_logging")
def test_third_party_loggers_obey_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    import bm25s  # sets its own logger to DEBUG on import
    from bm25s.tokenization import Tokenized

    configure_logging(load_settings({"ENV": "test", "LOG_LEVEL": "INFO"}, env_file=None))
    library = logging.getLogger("bm25s")
    assert library.level == logging.DEBUG
    library.debug("Building index from IDs objects")
    documents = Tokenized(ids=[[0, 1], [1, 2]], vocab={"a": 0, "b": 1, "c": 2})
    bm25s.BM25().index(documents, show_progress=False)  # what the support assistant does
    library.info("an info line")
    err = capsys.readouterr().err
    assert "DEBUG" not in err
    assert "Building index" not in err
    assert "an info line" in err


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
@pytest.mark.usefixtures("restore_logging")
def test_http_client_request_lines_never_carry_url_credentials(
    level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    configure_logging(load_settings({"ENV": "test", "LOG_LEVEL": level}, env_file=None))
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    with httpx.Client(transport=transport) as client:
        assert client.post("http://apiuser:S3CRETKEY@127.0.0.1:8540/v1/chat/completions")
    logging.getLogger("httpx").info(
        'HTTP Request: %s %s "%s %d %s"',
        "POST",
        httpx.URL("http://apiuser:S3CRETKEY@127.0.0.1:8540/v1/chat/completions"),
        "HTTP/1.1",
        200,
        "OK",
    )
    logging.getLogger("httpx").warning("still shown")
    err = capsys.readouterr().err
    assert "S3CRETKEY" not in err
    assert "still shown" in err
