"""Settings are documented, read from the environment, and refused clearly when wrong."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from app.settings import Settings, SettingsError, help_texts

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in help_texts() if f"`{name}`" not in readme]
    assert missing == []


def test_serve_help_lists_every_option_with_its_variable():
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    for f in dataclasses.fields(Settings):
        assert "--" + f.name.replace("_", "-") in flat
        assert "SPYGLASS_" + f.name.upper() in flat


def test_environment_is_read_and_options_win():
    s = Settings.from_env({"SPYGLASS_MAX_SPANS": "1_000", "SPYGLASS_UI_ADDR": "127.0.0.1:1"}, ui_addr="127.0.0.1:2")
    assert (s.max_spans, s.ui_addr) == (1000, "127.0.0.1:2")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SPYGLASS_MAX_SPANS": "lots"}, "SPYGLASS_MAX_SPANS must be an integer, got 'lots'"),
        ({"SPYGLASS_UI_ADDR": "8080"}, "SPYGLASS_UI_ADDR must be host:port"),
        ({"SPYGLASS_OTLP_GRPC_ENABLED": "maybe"}, "must be true or false"),
        ({"SPYGLASS_MAX_BODY_MB": "0"}, "SPYGLASS_MAX_BODY_MB must be at least 1"),
        ({"SPYGLASS_RETENTION_HOURS": "-1"}, "must not be negative"),
    ],
)
def test_bad_settings_name_the_variable(env, fragment):
    with pytest.raises(SettingsError, match=fragment.replace("(", r"\(")):
        Settings.from_env(env)


def test_serve_with_a_bad_value_exits_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SPYGLASS_UI_ADDR": "nowhere"},
    )
    assert result.returncode == 2
    assert "SPYGLASS_UI_ADDR must be host:port" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_an_unreachable_database_exits_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--database-url", "postgresql+psycopg://x:y@127.0.0.1:9/none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("spyglass: cannot open the store at postgresql+psycopg://x:***@127.0.0.1:9/none")
    assert "Traceback" not in result.stderr
