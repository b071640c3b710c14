"""The `rafka` command line (broker configuration path) and the logging setup it installs."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from rafka.broker.config import ConfigError
from rafka.broker.logs import configure_logging, get_logger, parse_level
from rafka.cli.broker_command import build_config
from rafka.cli.main import app, rafka_version

runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI configures process-wide logging; put it back for the other tests."""
    monkeypatch.delenv("RAFKA_LOG_FORMAT", raising=False)
    monkeypatch.delenv("RAFKA_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"rafka {rafka_version()}\n"
    assert rafka_version()[0].isdigit()


def test_help_lists_broker() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "broker" in result.stdout
    broker_help = runner.invoke(app, ["broker", "--help"])
    assert broker_help.exit_code == 0
    assert "--override" in broker_help.stdout and "--config" in broker_help.stdout


def test_bad_override_exits_2_with_one_line_naming_the_key() -> None:
    result = runner.invoke(app, ["broker", "--override", "num.partitions=lots"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("rafka: error: ")
    assert "num.partitions" in lines[0] and "'lots'" in lines[0]


def test_bad_config_file_value_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("node.id=1\nlisteners=PLAINTEXT://localhost\n")
    result = runner.invoke(app, ["broker", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"rafka: error: Invalid configuration listeners ({path}:2): "
        "'localhost' is not host:port"
    ]


def test_bad_env_value_and_missing_file_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["broker"], env={"RAFKA_NODE_ID": "x"})
    assert result.exit_code == 2
    assert "env RAFKA_NODE_ID" in result.stderr
    missing = runner.invoke(app, ["broker", "-c", str(tmp_path / "nope.properties")])
    assert missing.exit_code == 2
    expected = f"rafka: error: config file not found: {tmp_path / 'nope.properties'}"
    assert missing.stderr.strip() == expected


def test_bad_log_level_exits_2() -> None:
    result = runner.invoke(app, ["broker", "--log-level", "chatty"])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "chatty" in result.stderr


def test_build_config_merges_file_env_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text(
        "node.id=3\n"
        "log.dirs=/var/lib/rafka\n"
        "num.partitions=2\n"
        "listeners=PLAINTEXT://:19092\n"
        "advertised.listeners=PLAINTEXT://broker3:19092\n"
    )
    environ = {"RAFKA_NUM_PARTITIONS": "6", "RAFKA_LOG_RETENTION_HOURS": "1", "PATH": "/bin"}
    config = build_config(path, ["log.retention.hours=2", "auto.create.topics.enable=false"],
                          environ)
    assert config.node_id == 3
    assert config.log_dirs == [Path("/var/lib/rafka")]
    assert config.num_partitions == 6
    assert config.retention_ms == 2 * 3_600_000
    assert config.auto_create_topics_enable is False
    assert [(lst.host, lst.port) for lst in config.advertised_listeners] == [("broker3", 19092)]


def test_build_config_with_nothing_is_the_zero_config_single_node() -> None:
    config = build_config(None, [], {})
    assert config.is_single_node and config.node_id == 1
    assert [str(lst) for lst in config.listeners] == ["PLAINTEXT://localhost:9092"]
    with pytest.raises(ConfigError):
        build_config(None, ["process.roles=broker"], {})


def test_python_dash_m_rafka() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "rafka", "--version"], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"rafka {rafka_version()}"


# --- logging ------------------------------------------------------------------------------------


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_logs_for_structlog_and_stdlib() -> None:
    stream = io.StringIO()  # not a terminal: JSON lines
    configure_logging("info", stream=stream)
    get_logger("rafka.test").info("partition loaded", partition="t-0", offset=42)
    get_logger("rafka.test").debug("hidden below the level")
    logging.getLogger("asyncio").warning("slow callback %s", "x")
    try:
        raise RuntimeError("bad")
    except RuntimeError:
        get_logger("rafka.test").exception("failed")

    first, second, third = _json_lines(stream)
    assert first["event"] == "partition loaded" and first["offset"] == 42
    assert first["level"] == "info" and first["logger"] == "rafka.test"
    assert str(first["timestamp"]).endswith("Z") and "T" in str(first["timestamp"])
    assert second == {**second, "event": "slow callback x", "level": "warning",
                      "logger": "asyncio"}
    assert third["level"] == "error" and "RuntimeError: bad" in str(third["exception"])


def test_console_format_is_key_value() -> None:
    stream = io.StringIO()
    configure_logging("debug", json=False, stream=stream)
    get_logger("rafka.test").debug("ready", port=9092)
    line = stream.getvalue()
    assert "ready" in line and "port=9092" in line and "[debug" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_env_log_format_overrides_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAFKA_LOG_FORMAT", "json")
    stream = io.StringIO()
    configure_logging("info", json=False, stream=stream)
    get_logger("rafka.test").info("hello")
    assert _json_lines(stream)[0]["event"] == "hello"


def test_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", json=True, stream=first)
    configure_logging("info", json=True, stream=second)
    logging.getLogger("rafka.other").info("once")
    assert first.getvalue() == ""
    assert len(_json_lines(second)) == 1


def test_parse_level() -> None:
    assert parse_level("warn") == logging.WARNING
    assert parse_level(" Debug ") == logging.DEBUG
    assert parse_level(logging.ERROR) == logging.ERROR
    with pytest.raises(ValueError, match="unknown log level"):
        parse_level("verbose")
