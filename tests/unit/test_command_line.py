"""The command line: one parser per command, only its flags in its help, and config.ini < environment
< flags exactly as the README documents it, for every command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from loader import cli, options
from loader.errors import ConfigError
from loader.settings import load_settings


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.run(list(argv))
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _flags_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))


@pytest.mark.parametrize("command", list(options.COMMANDS))
def test_each_command_help_lists_exactly_its_own_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, command, "--help")
    assert text.startswith(f"usage: pharmload {command} ")
    own = {f for o in options.for_command(command) if o.kwargs.get("help") is not argparse.SUPPRESS
           for f in o.flags}
    shown = _flags_in(text.split("\nexample:")[0])
    assert shown == own | {"--help", "--config", "--version"}
    example = text.split("\nexample:\n", 1)[1].splitlines()[0].strip()
    assert example.startswith(f"pharmload {command} ")
    assert _flags_in(example) <= own  # the example only uses flags the command takes


def test_verify_help_shows_its_checks_not_a_loads_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "verify", "--help")
    assert text.startswith("usage: pharmload verify ")
    flags = _flags_in(text.split("\nexample:")[0])
    assert {"--tag", "--states-dir", "--deep", "--report-json", "--backend", "--dsn", "--image-dir"} <= flags
    assert not flags & {"--verify-writes", "--full", "--dry-run", "--rejects", "--manifest-dir", "--single-file"}
    assert "example:\n  pharmload verify --tag " in text


def test_help_groups_flags_by_what_they_are_for(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "load", "--help")
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[1:7] == list(options.GROUPS.values())
    assert "--test-kill-at" not in text


def test_overview_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["--help"]) == 0
    text = capsys.readouterr().out
    for command, (summary, _) in options.COMMANDS.items():
        assert re.search(rf"^  {re.escape(command)} +{re.escape(summary)}$", text, re.M)
    assert cli.run(["--version"]) == 0
    assert re.fullmatch(r"pharmload \S+\n", capsys.readouterr().out)


def test_without_a_command_the_flags_are_a_loads(tmp_path: Path) -> None:
    """The old importer's command lines name no command."""
    s = load_settings(["--states-dir", str(tmp_path), "--tag", "t", "--batch-size", "25"], env={})
    assert (s.command, s.tag, s.states_dir) == ("load", "t", tmp_path)


def test_a_command_may_follow_flags_and_values_that_look_like_commands(tmp_path: Path) -> None:
    s = load_settings(["--backend", "postgresql", "--dsn", "dbname=x", "status"], env={})
    assert (s.command, s.backend, s.dsn) == ("status", "postgresql", "dbname=x")
    s = load_settings(["--tag", "status", "--states-dir", str(tmp_path)], env={})  # a tag named like a command
    assert (s.command, s.tag) == ("load", "status")
    s = load_settings(["runs", "--tag=gc", "--limit", "3"], env={})
    assert (s.command, s.tag, s.limit) == ("runs", "gc", 3)


@pytest.mark.parametrize(("argv", "message"), [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["status", "--image-link", "copy"], "status does not take --image-link; it is a flag of load"),
    (["init-db", "--tag", "x"], "init-db does not take --tag; it is a flag of load, verify, runs, drop"),
    (["load", "--frobnicate"], "unknown flag --frobnicate"),
    (["runs", "extra"], "runs takes no argument 'extra'"),
    (["gc", "--grace", "soon"], "--grace 'soon': not a duration"),
    (["drop"], "--tag is required"),
    (["verify", "--tag", "t", "--states-dir", "/does/not/exist"], "--states-dir /does/not/exist: not a folder"),
])
def test_usage_errors_name_the_problem(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(argv, env={})


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pharmload.ini"
    path.write_text(text)
    return path


def test_config_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = _config(tmp_path, "[load]\nbackend = postgresql\nmax-workers = 3\nchunk-files = 500\n"
                               "lock-wait = fail\n[postgresql]\ndsn = dbname=from_config\nchunk-files = 700\n")
    args = ["load", "--config", str(config), "--states-dir", str(tmp_path), "--tag", "t"]
    s = load_settings(args, env={})
    assert (s.backend, s.dsn, s.max_workers, s.chunk_files, s.lock_wait) == (
        "postgresql", "dbname=from_config", 3, 700, False)  # the backend's section overrides [load]
    env = {"PHARMLOAD_DSN": "dbname=from_env", "PHARMLOAD_MAX_WORKERS": "2", "PHARMLOAD_LOCK_WAIT": "wait"}
    s = load_settings(args, env=env)
    assert (s.dsn, s.max_workers, s.chunk_files, s.lock_wait) == ("dbname=from_env", 2, 700, True)
    s = load_settings([*args, "--dsn", "dbname=from_flag", "--max-workers", "1"], env=env)
    assert (s.dsn, s.max_workers) == ("dbname=from_flag", 1)


def test_other_commands_read_the_same_config_and_environment(tmp_path: Path) -> None:
    """Keys a command does not take (a load's chunk size) are ignored; the ones it takes apply."""
    config = _config(tmp_path, "[load]\nbackend = postgresql\nchunk-files = 500\n[postgresql]\n"
                               "dsn = dbname=from_config\nimage-dir = /srv/images\n")
    status = load_settings(["status", "-c", str(config)], env={})
    assert (status.command, status.backend, status.dsn, status.image_dir) == (
        "status", "postgresql", "dbname=from_config", Path("/srv/images"))
    runs = load_settings(["runs", "-c", str(config)], env={"PHARMLOAD_DSN": "dbname=env", "PHARMLOAD_TAG": "t"})
    assert (runs.dsn, runs.tag) == ("dbname=env", "t")
    via_env = load_settings(["status"], env={"PHARMLOAD_CONFIG": str(config), "DATABASE_URL": "dbname=url"})
    assert via_env.dsn == "dbname=from_config"  # the config's DSN outranks DATABASE_URL, a fallback
    fallback = load_settings(["status", "--backend", "postgresql"], env={"DATABASE_URL": "dbname=url"})
    assert fallback.dsn == "dbname=url"


def test_the_supabase_key_comes_only_from_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("secret-from-file\n")
    env = {"SUPABASE_URL": "http://127.0.0.1:1", "SUPABASE_SERVICE_KEY_FILE": str(key_file),
           "SUPABASE_DB_URL": "dbname=sb"}
    s = load_settings(["load", "--backend", "supabase", "--states-dir", str(tmp_path), "--tag", "t"], env=env)
    assert (s.supabase_url, s.supabase_key, s.dsn) == ("http://127.0.0.1:1", "secret-from-file", "dbname=sb")
    assert "secret-from-file" not in repr(s)
    with pytest.raises(ConfigError, match="SUPABASE_SERVICE_KEY"):
        load_settings(["gc", "--backend", "supabase"], env={"SUPABASE_DB_URL": "dbname=sb"})


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("45s", 45), ("90m", 5400), ("24h", 86400),
                                               ("7d", 604800), ("0.5h", 1800)])
def test_grace_durations(text: str, seconds: float) -> None:
    assert load_settings(["gc", "--grace", text], env={}).grace_seconds == seconds
