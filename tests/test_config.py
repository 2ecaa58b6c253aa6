from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app

runner = CliRunner()


def test_defaults_file_env_flags_in_order(home: Path) -> None:
    (home / "config.toml").write_text('api_url = "http://file.example/api/"\nsettle = 3\n')
    settings = config.load(environ={"BEELINE_MISSED_HOME": str(home)})
    assert settings.api_url == "http://file.example/api"
    assert settings.settle == 3.0
    settings = config.load(
        environ={"BEELINE_MISSED_HOME": str(home), "BEELINE_API_URL": "http://env.example"}
    )
    assert settings.api_url == "http://env.example"
    settings = config.load(
        {"settle": "1.5", "db": "/tmp/x.sqlite"},
        environ={"BEELINE_MISSED_HOME": str(home), "BEELINE_MISSED_DB": "/tmp/env.sqlite"},
    )
    assert settings.settle == 1.5
    assert settings.db == Path("/tmp/x.sqlite")


def test_db_defaults_to_home_and_env_overrides(home: Path) -> None:
    assert config.load().db == home / "register.sqlite"
    settings = config.load(environ={"BEELINE_MISSED_HOME": str(home), "BEELINE_MISSED_DB": "/a.db"})
    assert settings.db == Path("/a.db")


def test_config_show_masks_token(monkeypatch) -> None:
    monkeypatch.setenv("BEELINE_API_TOKEN", "very-secret-token-value")
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert "very-secret" not in result.output
    assert "token-value" not in result.output
    assert '"api_token": "********"' in result.output


def test_config_init_writes_0600_and_refuses_to_overwrite(home: Path) -> None:
    result = runner.invoke(app, ["config", "init"])
    assert result.exit_code == 0, result.output
    path = home / "config.toml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert config.read_config_file(path) == {}  # everything commented out, valid TOML
    again = runner.invoke(app, ["config", "init"])
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_bad_config_file_is_one_sentence(home: Path) -> None:
    (home / "config.toml").write_text("settle = [unclosed\n")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 1
    assert "not valid TOML" in result.output
    assert "Traceback" not in result.output
