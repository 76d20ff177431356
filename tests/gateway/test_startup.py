"""`marketgate serve` stops with one line when it cannot start, and logs in one format."""

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import uvicorn
from click.testing import CliRunner

from gateway.cli import main
from gateway.logs import configure_logging

KEY = "the-access-key-of-the-startup-tests"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """uvicorn does not listen: each server records its port and counts as started."""
    ports: list[int] = []

    async def serve(server: uvicorn.Server, sockets: object = None) -> None:
        ports.append(server.config.port)
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    monkeypatch.setenv("MARKETGATE_ENVIRONMENT", "development")
    monkeypatch.setenv("MARKETGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'mg.db'}")
    return ports


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """`serve` configures logging for the process: put it back as the other tests know it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def _products(tmp_path: Path, adapter: str = "demo") -> Path:
    products = tmp_path / "products.toml"
    products.write_text(f'[products.crm]\nname = "CRM"\nadapter = "{adapter}"\naccess_key = "{KEY}"\n')
    return products


def test_serve_stops_in_one_line_at_an_unknown_adapter(
    served: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MARKETGATE_CONFIG", str(_products(tmp_path, adapter="nope")))
    result = CliRunner().invoke(main, ["serve", "--port", "8123"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "Error: product 'crm': unknown adapter 'nope' (installed: demo, http)"
    ]
    assert served == []
    assert not (tmp_path / "mg.db").exists()  # the products are checked before any migration


def test_serve_stops_in_one_line_when_the_database_is_down(
    served: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MARKETGATE_CONFIG", str(_products(tmp_path)))
    monkeypatch.setenv("MARKETGATE_DATABASE_URL", "postgresql://bob:HunterPw99@127.0.0.1:1/x")
    result = CliRunner().invoke(main, ["serve", "--port", "8123"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: cannot upgrade postgresql://bob:***@127.0.0.1:1/x: ")
    assert "Connection refused" in result.output and len(result.output.strip().splitlines()) == 1
    assert "HunterPw99" not in result.output and "Traceback" not in result.output
    assert served == []


def test_serve_migrates_then_serves(served: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MARKETGATE_CONFIG", str(_products(tmp_path)))
    result = CliRunner().invoke(main, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert served == [8123]
    with sqlite3.connect(tmp_path / "mg.db") as database:
        assert database.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_serve_creates_the_folder_of_a_new_sqlite_file(
    served: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No products (so no demo adapter to make the data folder first), a folder not there yet."""
    monkeypatch.setenv("MARKETGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'new' / 'mg.db'}")
    result = CliRunner().invoke(main, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert served == [8123] and (tmp_path / "new" / "mg.db").exists()


@pytest.mark.parametrize("command", [["serve", "--port", "8123"], ["db", "upgrade"]])
def test_a_database_upgraded_by_a_newer_marketgate_stops_start_up_in_one_line(
    served: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    with sqlite3.connect(tmp_path / "mg.db") as database:
        database.execute("UPDATE alembic_version SET version_num = 'zzz'")
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot upgrade sqlite:///{tmp_path / 'mg.db'}: the database is at revision zzz, "
        "which this MarketGate does not know (a newer one upgraded it)"
    ]
    assert served == []
    with sqlite3.connect(tmp_path / "mg.db") as database:
        assert database.execute("SELECT version_num FROM alembic_version").fetchall() == [("zzz",)]


def test_serve_no_migrate_leaves_the_database_alone(
    served: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MARKETGATE_CONFIG", str(_products(tmp_path)))
    monkeypatch.setenv("MARKETGATE_DATABASE_URL", "postgresql://bob:HunterPw99@127.0.0.1:1/x")
    result = CliRunner().invoke(main, ["serve", "--port", "8123", "--no-migrate"])
    assert result.exit_code == 0, result.output
    assert served == [8123]


def test_library_records_leave_in_the_same_json_as_marketgate_own(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", fmt="json")
    configure_logging(level="INFO", fmt="json")  # again: still one line per record
    structlog.get_logger("gateway.test").info("own_event", product="crm")
    logging.getLogger("sqlalchemy.pool.impl.QueuePool").error("Exception during reset or similar")
    logging.getLogger("httpx").info("HTTP Request: GET https://example.com/?orderId=1")  # below WARNING
    chatty = logging.getLogger("some.library")
    chatty.setLevel(logging.DEBUG)  # its own level lets everything through: the handler still does not
    chatty.info("token=secret-of-some-library")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("own_event", "info"),
        ("Exception during reset or similar", "error"),
    ]
    assert lines[1]["logger"] == "sqlalchemy.pool.impl.QueuePool" and "timestamp" in lines[1]
